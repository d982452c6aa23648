"""One interface for Stage 2 over many images: a `Mapper` applies an `ImageWork` to typed per-image tasks
and yields one `Outcome` per task.

The mappers differ only in *where* the work runs (this process, or Ray actors on a cluster); the rule
"record the image as failed and go on" vs "stop the run" lives here once (`run_task`), so a Ray run fails
an image exactly when a local run would. `run`, `segment` and `evaluate` all go through it.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from iapas import errors
from iapas.context import Context
from iapas.errors import IapasError, InputError

# Errors that cost one image, not the run: a bug or a resource problem while processing that image.
PER_IMAGE_ERRORS = (MemoryError, RuntimeError, ValueError, ArithmeticError, IndexError, TypeError)


class ImageTask(Protocol):
    """What a mapper needs of a per-image task: the input it reads (named in failures and progress)."""

    @property
    def path(self) -> Path:
        """The input image of the task."""
        ...


TaskT = TypeVar("TaskT", bound=ImageTask)
TaskT_contra = TypeVar("TaskT_contra", bound=ImageTask, contravariant=True)


@dataclass(frozen=True)
class ImageJob:
    """One input of `run` / `segment` still to process and the output name the run gave it."""

    path: Path
    name: str


class ImageWork(Protocol[TaskT_contra]):
    """The per-image function a mapper applies: picklable, so a Ray actor can run it too.

    `out_dir` is the folder the work writes into (the Ray mapper tidies partial files there once every
    batch is back). Calling it processes one task and returns what the caller records about the image
    (JSON-serialisable for work that runs on Ray); an `InputError` fails that image, another `IapasError`
    stops the run.
    """

    @property
    def out_dir(self) -> Path:
        """The folder the work writes into."""
        ...

    def __call__(self, pipeline: Any, context: Context, task: TaskT_contra) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ImageFailure:
    """Why one image failed.

    Attributes:
        path: the file at fault as the error named it (the image, or its mask when the mask is the problem).
        reason: a one-line message for the user.
        unexpected: True when the error was not an `InputError` (a bug or a resource problem).
        cause: the exception itself when the failure happened in this process (None across processes).
    """

    path: str
    reason: str
    unexpected: bool = False
    cause: BaseException | None = field(default=None, compare=False, repr=False)


Status = Literal["ok", "failed", "fatal"]


@dataclass
class Outcome(Generic[TaskT]):
    """What happened to one task.

    Attributes:
        task: the task it answers.
        status: "ok" (with `value`), "failed" (with `failure`: this image only) or "fatal" (with `fatal`: a
            model or settings problem that stops the run; mappers raise it rather than yield it).
        value: what the work returned for the image.
        failure: why the image failed.
        fatal: the error that stops the run, of its own type (exit status follows it).
    """

    task: TaskT
    status: Status
    value: dict[str, Any] | None = None
    failure: ImageFailure | None = None
    fatal: IapasError | None = None


def run_task(work: ImageWork[TaskT], pipeline: Any, context: Context, task: TaskT) -> Outcome[TaskT]:
    """Apply `work` to one task and sort any error into a failed or a fatal outcome.

    Args:
        work: the per-image function.
        pipeline: the `Pipeline` whose models the work uses.
        context: the Stage 1 context of the run.
        task: the image to process.

    Returns:
        "ok" with the work's value; "failed" for an `InputError` (its own path and reason) or an
        unexpected per-image error (`PER_IMAGE_ERRORS`); "fatal" for any other `IapasError`.
        KeyboardInterrupt and other exceptions propagate.
    """
    try:
        return Outcome(task, "ok", value=work(pipeline, context, task))
    except InputError as exc:
        return Outcome(task, "failed", failure=ImageFailure(exc.path, exc.reason, cause=exc))
    except IapasError as exc:
        return Outcome(task, "fatal", fatal=exc)
    except PER_IMAGE_ERRORS as exc:
        reason = f"unexpected error while processing ({type(exc).__name__}: {exc})"
        return Outcome(task, "failed", failure=ImageFailure(str(task.path), reason, unexpected=True, cause=exc))


def fatal_error(type_name: str, message: str) -> IapasError:
    """Rebuild a stopping error that crossed a process boundary as text (Ray workers), keeping its type so
    the CLI maps it to the same exit code as a local run.

    Args:
        type_name: the class name of the error in `iapas.errors`.
        message: its message.

    Returns:
        An error of that class (`IapasError` for an unknown name or `InputError`, which never stops a run).
    """
    cls = getattr(errors, type_name, IapasError)
    if not (isinstance(cls, type) and issubclass(cls, IapasError)) or cls is InputError:
        cls = IapasError
    if issubclass(cls, errors.ModelLoadError):
        err: IapasError = cls.__new__(cls)
        Exception.__init__(err, message)
        return err
    return cls(message)


class Mapper(Protocol):
    """Runs an `ImageWork` over tasks with a pipeline's models.

    `map` yields one `Outcome` per task (in any order), never skipping one; a fatal outcome is raised as
    its error, which stops the map.
    """

    name: str

    def map(self, pipeline: Any, context: Context, work: ImageWork[TaskT],
            tasks: Sequence[TaskT]) -> Iterator[Outcome[TaskT]]:
        """Apply `work` to every task.

        Args:
            pipeline: the driver's `Pipeline` (its models locally; its settings for remote workers).
            context: the Stage 1 context.
            work: the per-image function.
            tasks: the images to process.

        Returns:
            An iterator of "ok" / "failed" outcomes, one per task.

        Raises:
            IapasError: the first fatal outcome's error, with its own type.
        """
        ...
