"""`iapas calibrate`: re-fit a context's verdict (and mask) thresholds on a few labelled parts."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from iapas.cli import options as o
from iapas.cli.common import EXIT_STATUS_HELP, err_console, user_errors
from iapas.cli.console import echo, safe
from iapas.errors import InputError, SettingsError

EXAMPLES = """
Examples:

  iapas calibrate --context out/context.json --good checked/good --defect checked/defect

  iapas calibrate --context line3.json --good checked/good --target-frr 0.01   # good parts only

""" + EXIT_STATUS_HELP + "\n"


def scores_of(pipeline: object, context: object, folder: Path) -> tuple[list[float], list[Path]]:
    """Image scores of every image in `folder` (unreadable ones are reported and skipped)."""
    from iapas.io.listing import list_inputs

    paths = list_inputs([folder], skip_masks=True).paths
    if not paths:
        raise SettingsError(f"{folder}: no images found (.png, .jpg, .bmp, .tif, ...)")
    scores, used = [], []
    for p in paths:
        try:
            scores.append(float(pipeline.predict_one(p, context).image_score))  # type: ignore[attr-defined]
            used.append(p)
        except InputError as exc:
            err_console.print(f"[red]skipped[/] {safe(exc.path)}: {safe(exc.reason)}", soft_wrap=True)
    return scores, used


def register(app: typer.Typer) -> None:
    """Add `calibrate` to the app."""

    @app.command(epilog=EXAMPLES, help="Re-fit a context's verdict (and mask) thresholds on labelled parts; "
                 "writes them into the context and prints the expected error rates.")
    @user_errors
    def calibrate(
        context_file: Annotated[Path, typer.Option("--context", help="context JSON to re-fit (rewritten in place, atomically)")],
        good: Annotated[Path, typer.Option("--good", help="folder of parts known to be good")],
        defect: Annotated[Optional[Path], typer.Option("--defect", help="folder of parts known to be defective")] = None,
        target_frr: o.TargetFrrOpt = None,
        device: o.DeviceOpt = None,
        threads: o.ThreadsOpt = None,
    ) -> None:
        from iapas.cli.run import _pipeline
        from iapas.context import Context
        from iapas.io.atomic import atomic_write_json
        from iapas.verdict import recalibrated

        if target_frr is not None and not 0.0 < target_frr < 0.5:
            raise SettingsError(f"--target-frr must be in (0, 0.5), got {target_frr}")
        context = Context.load(context_file)
        if context.reference.mode == "zero-shot":
            raise SettingsError("a zero-shot context calibrates on its own batch; give --verdict-threshold to `run` "
                                "instead, or make a context from normal images (`iapas prompts --normal DIR`)")
        update = {"profile": context.profile, **({"device": device} if device else {}), **({"threads": threads} if threads else {})}
        pipeline = _pipeline(context.config.model_copy(update=update), stage2_only=True)
        good_scores, _ = scores_of(pipeline, context, good)
        defect_scores, _ = scores_of(pipeline, context, defect) if defect is not None else ([], [])
        if not good_scores:
            raise SettingsError(f"{good}: no readable good part")
        thresholds, report = recalibrated(context, good_scores, defect_scores, target_frr)
        context.thresholds = thresholds
        setattr(context, "labelled_calibration", report)
        atomic_write_json(context_file, context.model_dump(mode="json"))
        fmt = lambda xs: ", ".join(f"{x:.3f}" for x in sorted(xs)) or "-"  # noqa: E731
        echo(f"good parts ({len(good_scores)}): {fmt(good_scores)}")
        echo(f"defective parts ({len(defect_scores)}): {fmt(defect_scores)}")
        prev = report["previous_threshold"]
        echo(f"threshold: {report['threshold']:.4f}" + (f" (was {prev:.4f})" if isinstance(prev, float) else ""))
        echo(f"rule: {report['rule']}")
        echo(f"good parts rejected at it: {report['false_reject_text']}")
        echo(f"defective parts missed at it: {report['miss_text']}")
        echo(f"written to {safe(context_file)}")
