"""Where Stage 2 runs: `local` (this process) or `ray` (an actor pool on a Ray cluster, via Ray Data).

Both engines call the same per-image function and yield the same per-image outcomes; the caller keeps
summary.json and the resume cache, so a run's files do not depend on the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iapas.context import Context
from iapas.engines.base import Engine, ImageJob, Outcome, ProcessOne, run_one
from iapas.engines.ray_engine import RaySettings

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineChoice:
    """The `--engine` flag and, for Ray, where the cluster is and how many actors to start."""

    name: str = "local"
    ray: RaySettings = field(default_factory=RaySettings)


def make_engine(choice: EngineChoice | None, process_one: ProcessOne, pipeline: Any, context: Context, out: Path,
                digest: str) -> Engine:
    """The engine that runs `process_one` over a run's images."""
    choice = choice or EngineChoice()
    if choice.name == "ray":
        from iapas.engines.ray_engine import RayEngine

        config = pipeline.resolved_config  # workers must not re-resolve "auto"
        return RayEngine(process_one, config, context, out, digest, choice.ray)
    from iapas.engines.local import LocalEngine

    return LocalEngine(process_one, pipeline, context, out, digest)


__all__ = ["ENGINES", "Engine", "EngineChoice", "ImageJob", "Outcome", "ProcessOne", "RaySettings", "make_engine", "run_one"]
