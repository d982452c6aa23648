"""`iapas compare`: comparison panels over two or more result folders (run, segment or evaluate)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iapas.cli.common import fail, user_errors
from iapas.errors import EXIT_BAD_SETTINGS, EXIT_NOTHING_DONE

COMPARE_HELP = """Side-by-side panels (image | ground truth | score map of each folder) for the images that
appear in every folder, matched by source image path; writes compare_panel_NN.png and compare.html.

Example:

  iapas compare results_offline/ results_paper/ --out cmp/ --images 12
"""


def compare(
    folders: Annotated[list[Path], typer.Argument(metavar="FOLDER",
                                                  help="two or more output folders of run, segment or evaluate")],
    out: Annotated[Path, typer.Option("--out", help="folder for the panels and compare.html")],
    images: Annotated[int, typer.Option("--images", help="how many matched images to show")] = 8,
) -> None:
    """Compare the score maps of two or more result folders on the same images."""
    from iapas.outputs.compare import NothingToCompare, write_comparison

    if len(folders) < 2:
        fail("compare needs two or more result folders", EXIT_BAD_SETTINGS)
    if images < 1:
        fail(f"--images must be at least 1, got {images}", EXIT_BAD_SETTINGS)
    try:
        path = write_comparison(folders, out, max_images=images)
    except NothingToCompare as exc:
        fail(str(exc), EXIT_NOTHING_DONE)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add `iapas compare` to the app."""
    app.command("compare", help=COMPARE_HELP,
                short_help="Comparison panels over two or more result folders (run, segment, evaluate).")(
        user_errors(compare))
