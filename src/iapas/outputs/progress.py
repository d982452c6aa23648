"""The one progress-bar look of the tool (stderr, count, images/s, time left), shared by run and evaluate."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def images_progress(enabled: bool) -> Progress:
    """A bar with a `rate` field for images/s; nothing is drawn when disabled."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
