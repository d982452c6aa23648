"""`iapas evaluate --engine ray`: the harness's images still to predict go through an engine of iapas.engines.

The harness may not import the engines (they sit above it), so this CLI-layer adapter turns an engine into
the harness's `map_images`; the per-image callable wraps `evaluate_one`, so the records land in the same
cache files as with the local loop, and metrics, resume and the report do not depend on the engine.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iapas.context import Context
from iapas.engines import EngineChoice, ImageJob, make_engine
from iapas.errors import InputError
from iapas.evaluation.harness import EvalImage, EvalTask, MapImages
from iapas.pipeline import Pipeline


@dataclass(frozen=True)
class EvalProcessOne:
    """The engines' `process_one` for one category/seed job: runs `fn` on the task named `name`.

    An InputError comes back as data (not as the engine's failed outcome), so its own path (the image or
    its mask) and reason reach the failures list exactly as in a local run, even from a Ray actor.
    """

    fn: EvalImage
    tasks: dict[str, EvalTask]

    def __call__(self, pipeline: Any, context: Context, path: Path, out: Path, name: str,
                 digest: str) -> dict[str, Any]:
        try:
            self.fn(pipeline, context, self.tasks[name])
        except InputError as exc:
            return {"input_error": {"path": exc.path, "reason": exc.reason}}
        return {}


def engine_map_images(choice: EngineChoice) -> MapImages:
    """The harness's `map_images` on the chosen engine (one actor pool per category/seed job for Ray)."""

    def map_images(pipeline: Pipeline, ctx: Context, tasks: list[EvalTask],
                   fn: EvalImage) -> Iterator[tuple[EvalTask, InputError | None]]:
        if not tasks:
            return
        named = {str(i): t for i, t in enumerate(tasks)}
        jobs = [ImageJob(t.sample.image_path, n) for n, t in named.items()]
        engine = make_engine(choice, EvalProcessOne(fn, named), pipeline, ctx, tasks[0].dest.parent, "")
        for outcome in engine.map(jobs):
            if outcome.fatal is not None:
                raise outcome.fatal  # model or settings problems stop the run, as locally
            task = named[outcome.name]
            if outcome.status != "ok":
                # an unexpected error (or no answer from the workers): locally it would stop the run too
                raise RuntimeError(f"{task.sample.image_path}: {outcome.error or 'failed'}")
            err = (outcome.extra or {}).get("input_error")
            yield task, (InputError(err["path"], err["reason"]) if err else None)

    return map_images


@contextmanager
def engine_session(choice: EngineChoice) -> Iterator[MapImages | None]:
    """For Ray: join (or start) the cluster once for the whole evaluation, not once per job, and yield the
    engine's `map_images`; for local: None (the harness's own loop, unchanged)."""
    if choice.name != "ray":
        yield None
        return
    from iapas.engines.ray_engine import connect

    started = connect(choice.ray.address)
    try:
        yield engine_map_images(choice)
    finally:
        if started:
            import ray

            ray.shutdown()
