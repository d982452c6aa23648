"""What every engine shares: one image's job, one image's outcome, and the rule that turns a processing
error into a per-image failure or a stop of the whole run.

The engines differ only in *where* `process_one` runs (this process, or Ray actors on a cluster); the
decision "record and go on" vs "stop" lives here once, so a Ray run fails an image exactly when a local
run would.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from iapas import errors
from iapas.context import Context
from iapas.errors import IapasError, InputError

# process_one(pipeline, context, path, out, name, digest) -> what the summary records about the image
ProcessOne = Callable[[Any, Context, Path, Path, str, str], dict[str, Any]]

# Errors that cost one image, not the run (the same list the local loop always used).
PER_IMAGE_ERRORS = (MemoryError, RuntimeError, ValueError, ArithmeticError, IndexError, TypeError)


@dataclass(frozen=True)
class ImageJob:
    """One input still to process and the output name the run gave it."""

    path: Path
    name: str


@dataclass
class Outcome:
    """What happened to one image: status "ok" (with `extra` for the summary) or "failed" (with `error`)."""

    path: Path
    name: str
    status: str
    error: str | None = None
    extra: dict[str, Any] | None = None
    # set when the error must stop the whole run (a model or settings problem): the exception to raise
    fatal: IapasError | None = None


def run_one(process_one: ProcessOne, pipeline: Any, context: Context, job: ImageJob, out: Path, digest: str) -> Outcome:
    """Process one image; an input problem or an unexpected per-image error becomes a failed outcome."""
    try:
        extra = process_one(pipeline, context, job.path, out, job.name, digest)
        return Outcome(job.path, job.name, "ok", extra=extra)
    except InputError as exc:
        return Outcome(job.path, job.name, "failed", error=exc.reason)
    except IapasError as exc:
        return Outcome(job.path, job.name, "fatal", error=str(exc), fatal=exc)
    except PER_IMAGE_ERRORS as exc:
        reason = f"unexpected error while processing ({type(exc).__name__}: {exc})"
        return Outcome(job.path, job.name, "failed", error=reason)


def fatal_error(type_name: str, message: str) -> IapasError:
    """Rebuild a stopping error that crossed a process boundary as text (Ray workers), keeping its type so
    the CLI maps it to the same exit code as a local run."""
    cls = getattr(errors, type_name, IapasError)
    if not (isinstance(cls, type) and issubclass(cls, IapasError)) or cls is InputError:
        cls = IapasError
    if issubclass(cls, errors.ModelLoadError):
        err: IapasError = cls.__new__(cls)
        Exception.__init__(err, message)
        return err
    return cls(message)


class Engine(Protocol):
    """Runs `process_one` over jobs; yields one Outcome per job (in any order), never skipping one."""

    name: str

    def map(self, jobs: Iterable[ImageJob]) -> Iterator[Outcome]:
        ...
