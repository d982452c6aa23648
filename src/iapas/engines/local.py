"""The local engine: every image in this process, one after the other (the tool's default)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from iapas.context import Context
from iapas.engines.base import ImageJob, Outcome, ProcessOne, run_one


class LocalEngine:
    """Runs `process_one` on each job in order, with the models this process already holds."""

    name = "local"

    def __init__(self, process_one: ProcessOne, pipeline: Any, context: Context, out: Path, digest: str) -> None:
        self.process_one = process_one
        self.pipeline = pipeline
        self.context = context
        self.out = out
        self.digest = digest

    def map(self, jobs: Iterable[ImageJob]) -> Iterator[Outcome]:
        for job in jobs:
            yield run_one(self.process_one, self.pipeline, self.context, job, self.out, self.digest)
