"""The one progress look of the tool, shared by run and evaluate: a rich bar on a terminal, plain lines
elsewhere (CI logs, services, `| tee`), where a bar would print nothing useful until the end."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

PLAIN_EVERY_S = 5.0


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


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class PlainProgress:
    """One plain line at most every `every` seconds (and at the end): done/total, images/s, time left."""

    def __init__(self, label: str, total: int, every: float = PLAIN_EVERY_S, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.every = label, total, every
        self._stream, self._clock = stream, clock
        self._t0 = self._last = clock()

    def update(self, done: int, computed: int | None = None, extra: str = "") -> str | None:
        """Print (and return) a line when `every` seconds passed since the last one or `done` reached the total.
        `computed` counts the images really processed (reused ones do not make a rate)."""
        now = self._clock()
        if now - self._last < self.every and done < self.total:
            return None
        self._last = now
        elapsed = max(now - self._t0, 1e-9)
        n = done if computed is None else computed
        rate = n / elapsed
        left = f", about {_duration((self.total - done) / rate)} left" if rate > 0 and done < self.total else ""
        pct = 100.0 * done / self.total if self.total else 100.0
        line = f"{self.label}: {done}/{self.total} images ({pct:.0f}%), {rate:.2f} images/s{left}{extra}"
        print(line, file=self._stream or sys.stderr, flush=True)
        return line
