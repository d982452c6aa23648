"""A rich progress bar for the evaluation loop that shows images per second; silent when disabled."""
from __future__ import annotations

import time

from iapas.outputs.progress import images_progress


class EvalProgress:
    """Context manager: `describe(text)`, `advance()`; the rate counts only predicted images."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self._progress = images_progress(enabled)
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

    def advance(self) -> None:
        self._done += 1
        rate = self._done / max(time.perf_counter() - self._t0, 1e-9)
        self._progress.update(self._task, advance=1, rate=f"{rate:.2f} img/s")
