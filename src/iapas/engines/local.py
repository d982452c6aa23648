"""The local mapper: every image in this process, one after the other (the tool's default)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from iapas.context import Context
from iapas.engines.base import ImageWork, Outcome, TaskT, run_task


class LocalMapper:
    """Applies the work to each task in order, with the models the given pipeline already holds."""

    name = "local"

    def map(self, pipeline: Any, context: Context, work: ImageWork[TaskT],
            tasks: Sequence[TaskT]) -> Iterator[Outcome[TaskT]]:
        """Yield each task's outcome in order; raise the first fatal error.

        Args:
            pipeline: the `Pipeline` whose models the work uses.
            context: the Stage 1 context.
            work: the per-image function.
            tasks: the images to process.

        Returns:
            An iterator of outcomes, "ok" or "failed", one per task in the given order.
        """
        for task in tasks:
            outcome = run_task(work, pipeline, context, task)
            if outcome.fatal is not None:
                raise outcome.fatal
            yield outcome
