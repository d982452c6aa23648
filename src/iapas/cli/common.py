"""Helpers every command uses: one-line errors, exit codes, progress bars."""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from iapas.outputs.progress import images_progress, stderr_is_terminal
from iapas.errors import (
    EXIT_BAD_SETTINGS,
    EXIT_INTERRUPTED,
    EXIT_NOTHING_DONE,
    DatasetError,
    ModelLoadError,
    SettingsError,
)

err_console = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


EXIT_STATUS_HELP = (
    "Exit status: 0 all inputs processed; 3 some inputs failed (summary.json lists each file and why); "
    "4 nothing could be processed; 2 invalid settings or missing models (rejected before any model loads); "
    "5 with --fail-on-defect: every input processed and at least one image is a defect; "
    "130 interrupted (Ctrl-C or SIGTERM; rerun the same command to resume)."
)
INTERRUPTED_MESSAGE = "interrupted; finished results are kept, rerun the same command to resume"


def fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill, systemd stop, CI timeout) like Ctrl-C: unwind cleanly, save the summary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def user_errors(func: F) -> F:
    """Turn the tool's own exceptions into one clear message and a documented exit code;
    Ctrl-C and SIGTERM end the command with status 130 after finished results are saved."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with terminate_as_interrupt():
                return func(*args, **kwargs)
        except (SettingsError, DatasetError) as exc:
            fail(str(exc), EXIT_BAD_SETTINGS)
        except ModelLoadError as exc:
            fail(str(exc), EXIT_NOTHING_DONE)
        except KeyboardInterrupt:
            err_console.print(INTERRUPTED_MESSAGE, soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def progress_bar() -> Progress:
    """A progress bar on stderr with images/s; hidden when stderr is not a terminal."""
    return images_progress(enabled=stderr_is_terminal())
