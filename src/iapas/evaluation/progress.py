"""Progress of the evaluation loop: a rich bar with images/s on a terminal, plain lines elsewhere."""
from __future__ import annotations

import time

from iapas.io.progress import PlainProgress, images_progress, stderr_is_terminal


class EvalProgress:
    """Context manager: `describe(text)`, `advance()`; the rate counts only predicted images."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        bar = enabled and stderr_is_terminal()
        self._progress = images_progress(bar)
        self._plain = PlainProgress("evaluate", total) if enabled and not bar else None
        self._task = self._progress.add_task("evaluate", total=total, rate="")
        self._done = 0
        self._t0 = time.perf_counter()

    def __enter__(self) -> "EvalProgress":
        self._progress.__enter__()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def describe(self, text: str) -> None:
        self._progress.update(self._task, description=text)
        if self._plain is not None:
            self._plain.label = f"evaluate {text}"

    def advance(self) -> None:
        self._done += 1
        rate = self._done / max(time.perf_counter() - self._t0, 1e-9)
        self._progress.update(self._task, advance=1, rate=f"{rate:.2f} img/s")
        if self._plain is not None:
            self._plain.update(self._done)
