"""Helpers every command uses: one-line errors, exit codes, progress bars."""
from __future__ import annotations

import errno
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.markup import escape
from rich.progress import Progress

from iapas.cli.console import SafeConsole, printable
from iapas.io.progress import images_progress, stderr_is_terminal
from iapas.errors import (
    EXIT_BAD_SETTINGS,
    EXIT_INTERRUPTED,
    EXIT_NOTHING_DONE,
    DatasetError,
    ModelLoadError,
    SettingsError,
)

err_console = SafeConsole(stderr=True, highlight=False)  # control characters never reach the terminal raw
F = TypeVar("F", bound=Callable[..., Any])


EXIT_STATUS_HELP = (
    "Exit status: 0 all inputs processed; 3 some inputs failed (summary.json lists each file and why); "
    "4 nothing could be processed (or written: disk full); 2 invalid settings or missing models (rejected before "
    "any model loads); 5 with --fail-on-defect: every input processed and at least one image is a defect; "
    "130 interrupted (Ctrl-C or SIGTERM; rerun the same command to resume)."
)
INTERRUPTED_MESSAGE = "interrupted; finished results are kept, rerun the same command to resume"


def fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {escape(printable(message, keep_newlines=True))}", soft_wrap=True)
    raise typer.Exit(code)


# file-system errors that mean "this --out (or other path) cannot be used": a settings problem, status 2;
# any other (disk full, I/O error, quota) stops a run that could not complete: status 4
PATH_ERRNOS = {errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
               errno.ENOENT, errno.ELOOP}


def os_error_exit(exc: OSError) -> tuple[str, int]:
    """One line naming the file and the problem, and the documented exit status for it."""
    where = exc.filename if exc.filename is not None else "a file"
    what = exc.strerror or type(exc).__name__
    if exc.errno in PATH_ERRNOS:
        return f"cannot use {where}: {what} (check the path; --out must be a folder you can write to)", EXIT_BAD_SETTINGS
    return f"cannot write {where}: {what}; finished results are kept, rerun to resume once fixed", EXIT_NOTHING_DONE


def check_output_file(path: Path, flag: str = "--out") -> None:
    """Refuse an output file that cannot be written (folder below a file, read-only, name too long)
    before any work, as a settings error, instead of failing after Stage 1."""
    import os
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
        limit = os.pathconf(path.parent, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    except OSError as exc:
        raise SettingsError(f"{flag} {path}: cannot write into {exc.filename or path.parent} ({exc.strerror or exc})") from None
    if len(os.fsencode(path.name)) > limit:
        raise SettingsError(f"{flag} {path}: the file name is longer than {limit} bytes")


def _raise_interrupt(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not cut short the saving of what was done
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
        except OSError as exc:  # read-only or full disk, --out below a file, a name too long: no traceback
            fail(*os_error_exit(exc))
        except KeyboardInterrupt:
            err_console.print(INTERRUPTED_MESSAGE, soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def progress_bar() -> Progress:
    """A progress bar on stderr with images/s; hidden when stderr is not a terminal."""
    return images_progress(enabled=stderr_is_terminal())
