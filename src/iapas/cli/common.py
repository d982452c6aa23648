"""Helpers every command uses: one-line errors, exit codes, progress bars."""
from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from iapas.errors import EXIT_BAD_SETTINGS, EXIT_NOTHING_DONE, DatasetError, ModelLoadError, SettingsError

err_console = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def user_errors(func: F) -> F:
    """Turn the tool's own exceptions into one clear message and a documented exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (SettingsError, DatasetError) as exc:
            fail(str(exc), EXIT_BAD_SETTINGS)
        except ModelLoadError as exc:
            fail(str(exc), EXIT_NOTHING_DONE)

    return wrapper  # type: ignore[return-value]


def progress_bar() -> Progress:
    """A progress bar on stderr with images/s; hidden when stderr is not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
    )
