"""`iapas evaluate`: reproduce the paper's tables on public benchmarks (or a folder of your own)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from iapas.cli import options as o
from iapas.cli.common import EXIT_STATUS_HELP, err_console, user_errors
from iapas.cli.console import echo, printable, safe
from iapas.cli.engine_options import EngineOpt, RayActorsOpt, RayAddressOpt, engine_choice
from iapas.config import PipelineConfig, read_config_file
from iapas.errors import EXIT_NOTHING_DONE, EXIT_SOME_FAILED, SettingsError
from iapas.profiles.registry import batch_profiles

EXAMPLES = """
Examples:

  iapas evaluate --dataset mtd --root ../shared/datasets/mtd --out eval/mtd

  iapas evaluate --dataset mvtec --root data/mvtec --out eval/mv --protocol paper --seeds 111,112,113

  iapas evaluate --dataset mvtec --root data/mvtec --out eval/base --baseline --profile paper   # Table 3 'base'

  iapas evaluate --dataset mvtec --root data/mvtec --out eval/q --categories bottle,screw --limit 20

  iapas evaluate --dataset mtd --root ../shared/datasets/mtd --out eval/mtd-zs --zero-shot   # no normal images

  iapas evaluate --dataset mvtec --root /shared/mvtec --out /shared/eval/mv --engine ray --ray-address auto

  (killed or Ctrl-C? run the same command again: cached per-image results are reused)

""" + EXIT_STATUS_HELP + "\n"


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise SettingsError(f"--seeds must be comma-separated integers, e.g. 111,112,113 (got {text!r})") from None
    if not seeds:
        raise SettingsError("--seeds needs at least one seed")
    return seeds


def parse_categories(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [c for v in values for c in v.split(",") if c.strip()] or None


def kind_from_dataset(flags: dict[str, Any]) -> bool:
    """Use each category's object/texture preset unless --kind (auto: chosen from the normal images) or the
    config file sets one."""
    if flags.get("kind") is not None:
        return False
    cfg_file = flags.get("config_file")
    return not (cfg_file and "kind" in read_config_file(cfg_file))


def zero_shot_config(config: PipelineConfig) -> PipelineConfig:
    """Zero-shot mode is the offline profile's: choose it when no profile is given, refuse another one."""
    if config.profile is None:
        return config.model_copy(update={"profile": batch_profiles()[0]})
    if config.profile not in batch_profiles():
        raise SettingsError(f"zero-shot mode (no normal images) needs --profile {' or '.join(batch_profiles())}, not {config.profile}")
    return config


def write_report(out: Path) -> None:
    try:
        from iapas.outputs.report import write_evaluation_report
    except ImportError:
        err_console.print("note: the HTML report module (iapas.outputs.report) is not available in this install")
        return
    err_console.print(f"report: {safe(write_evaluation_report(out))}")


def print_test_counts(counts: dict[str, dict[str, int]]) -> None:
    """How many test images each category counted good and defective (from its masks / folders), so a wrong
    pairing of images and masks shows before anyone reads the metrics."""
    for cat, c in counts.items():
        err_console.print(f"{safe(cat)}: {c['good'] + c['defective']} test images counted, {c['good']} good, "
                          f"{c['defective']} defective", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `evaluate` to the app."""

    @app.command(epilog=EXAMPLES)
    @user_errors
    @o.with_pipeline_flags
    def evaluate(
        dataset: Annotated[str, typer.Option("--dataset", help="mvtec, mpdd, btad, ksdd1, ksdd2, mtd, dtd-synthetic, dagm2007, visa or folder")],
        root: Annotated[Path, typer.Option("--root", help="dataset folder in its publisher's layout")],
        out: Annotated[Path, typer.Option("--out", help="results folder: metrics.json/.csv/.md, cache/, contexts/")],
        categories: Annotated[Optional[list[str]], typer.Option("--categories", help="only these categories (repeat or comma-separate)")] = None,
        protocol: Annotated[str, typer.Option("--protocol", help="standard (all test images, raw maps) or paper (the official IAP-AS evaluation: its image selection, per-map and per-category min-max, 400 px bicubic, 100 thresholds)")] = "standard",
        seeds: Annotated[str, typer.Option("--seeds", help="comma-separated seeds of the normal-image sample; >1 gives mean ± std")] = "",
        limit: Annotated[Optional[int], typer.Option("--limit", help="evaluate at most N test images per category (evenly spread)")] = None,
        eval_size: Annotated[Optional[int], typer.Option("--eval-size", help="square resolution maps and masks are compared at (default: 256 standard, 400 paper as the official code)")] = None,
        report: Annotated[bool, typer.Option("--report", help="also write the HTML report")] = False,
        zero_shot: Annotated[bool, typer.Option("--zero-shot", help="no normal images: score each test image against the other test images (offline profile)")] = False,
        engine: EngineOpt = "local",
        ray_address: RayAddressOpt = None,
        ray_actors: RayActorsOpt = None,
        *,
        flags: dict[str, Any],
    ) -> None:
        """Evaluate on a benchmark: per-category pixel/image AP, F1-max, AUROC, AUPRO and the mean row."""
        from iapas.cli.eval_engine import engine_session
        from iapas.evaluation.harness import run_evaluation

        chosen = engine_choice(engine, ray_address, ray_actors)
        seed_list = parse_seeds(seeds) if seeds else [flags["seed"] if flags.get("seed") is not None else 111]
        config = o.config_from_flag_dict(flags)
        if zero_shot:
            config = zero_shot_config(config)
        from iapas.cli.run import output_folder
        from iapas.preflight import check_models
        from iapas.pipeline import resolve_profile

        from iapas.data.base import get_reader

        get_reader(dataset).find_categories(root)  # unknown dataset, missing root, wrong layout: exit 2 before --out exists
        check_models(config, resolve_profile(config))  # unknown model ids: exit 2 before any model loads
        with output_folder(out, subdirs=("cache", "contexts")), engine_session(chosen) as map_images:
            metrics = run_evaluation(  # one writer; partial files of a killed run go
                dataset, root, out, config, categories=parse_categories(categories), protocol=protocol,
                seeds=seed_list, limit=limit, eval_size=eval_size, progress=True, auto_kind=kind_from_dataset(flags),
                zero_shot=zero_shot, map_images=map_images,
            )
        if metrics.get("profile_note"):
            err_console.print(f"note: {metrics['profile_note']}")
        for note in metrics.get("notes", []):
            if "(official rule)" in note:  # the paper protocol counted a category's undefined AP as 0
                err_console.print(f"note: {safe(note)}")
        print_test_counts(metrics.get("test_counts") or {})
        echo((out / "metrics.md").read_text(encoding="utf-8"))
        echo(f"mode: {metrics['mode_note']}")
        ips = metrics.get("images_per_second")
        typer.echo(f"images/s: {ips:.2f}" if isinstance(ips, (int, float)) else "images/s: n/a", nl=False)
        typer.echo(f"; predicted {metrics['n_predicted']}, "
                   f"from cache {metrics['n_cached']}; written to {printable(out)}")
        if report:
            write_report(out)
        if metrics["failures"]:
            err_console.print(f"{len(metrics['failures'])} image(s) failed; see {safe(out / 'metrics.json')} (failures)")
            evaluated = sum(r["n_images"] for r in metrics["categories"].values())
            raise typer.Exit(EXIT_NOTHING_DONE if evaluated == 0 else EXIT_SOME_FAILED)
