"""Where Stage 2 runs over many images: `local` (this process) or `ray` (an actor pool on a Ray cluster).

Both mappers apply the same `ImageWork` to the same tasks and yield the same `Outcome`s; the caller keeps
summary.json (run, segment) or the evaluation's record cache, so a run's files do not depend on the mapper.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iapas.engines.base import (
    ImageFailure, ImageJob, ImageTask, ImageWork, Mapper, Outcome, fatal_error, run_task,
)
from iapas.engines.local import LocalMapper
from iapas.engines.ray_engine import RayMapper, RaySettings, ray_session

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineChoice:
    """The `--engine` flag and, for Ray, where the cluster is and how many actors to start."""

    name: str = "local"
    ray: RaySettings = field(default_factory=RaySettings)


def make_mapper(choice: EngineChoice | None = None, tidy: Callable[[Path], Any] | None = None) -> Mapper:
    """The mapper the engine flags chose.

    Args:
        choice: the engine flags (None: local).
        tidy: for Ray, the cleanup of partial files in the work's output folder once every batch is back.

    Returns:
        A `LocalMapper` or a `RayMapper`.
    """
    if choice is not None and choice.name == "ray":
        return RayMapper(choice.ray, tidy)
    return LocalMapper()


@contextmanager
def open_mapper(choice: EngineChoice | None = None, tidy: Callable[[Path], Any] | None = None) -> Iterator[Mapper]:
    """The chosen mapper for a run of many maps (the evaluation's category/seed jobs): for Ray, the cluster
    is joined (or a local instance started) once for the whole run, not once per map.

    Args:
        choice: the engine flags (None: local).
        tidy: see `make_mapper`.

    Returns:
        A context manager yielding the mapper; Ray is shut down on exit when this call started it.
    """
    mapper = make_mapper(choice, tidy)
    if not isinstance(mapper, RayMapper):
        yield mapper
        return
    with ray_session(mapper.settings.address):
        yield mapper


__all__ = ["ENGINES", "EngineChoice", "ImageFailure", "ImageJob", "ImageTask", "ImageWork", "LocalMapper", "Mapper",
           "Outcome", "RayMapper", "RaySettings", "fatal_error", "make_mapper", "open_mapper", "run_task"]
