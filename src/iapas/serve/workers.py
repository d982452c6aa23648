"""A bounded work queue and one model worker thread per device.

Why: a model is not re-entrant and a device runs one forward pass at a time well, so each device gets one
thread that owns its models (loaded once, before the server accepts requests). Requests wait in a queue of
fixed length; when it is full the caller answers 503 at once instead of letting a backlog grow without
bound. A request that gave up (timeout) is cancelled if it has not started, so no worker time is wasted.

Each image goes through `engines.run_task`, the per-image step of the mappers `run` and `evaluate` use, and
its typed `Outcome` answers the request's future. The loop is not a `LocalMapper.map`: requests arrive one at
a time and each has its own future, a queued request may be cancelled, and an error that would stop a batch
run (a model problem) must only fail its own request while the server goes on.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iapas.context import Context
from iapas.engines import Outcome, run_task
from iapas.io.images import LoadedImage, load_image
from iapas.pipeline import Pipeline
from iapas.serve.accesslog import event
from iapas.serve.guard import TRIM_PIXELS, give_memory_back
from iapas.serve.lines import Line
from iapas.types import Prediction
from iapas.verdict import Verdict, decide, settle


class QueueFull(Exception):
    """Every worker is busy and the queue holds its maximum of waiting requests."""


@dataclass
class Job:
    """One request's image waiting for a worker, and the future its answer goes to."""

    line: str
    image: LoadedImage
    enqueued: float = field(default_factory=time.perf_counter)
    future: Future = field(default_factory=Future)

    @property
    def path(self) -> Path:
        """The upload's name (what a failure names)."""
        return Path(self.image.path)


@dataclass(frozen=True)
class Inspect:
    """The service's per-image work: predict, decide and settle; the value holds the objects the answer needs
    (this work never leaves the process)."""

    out_dir: Path = Path(".")  # writes nothing

    def __call__(self, pipeline: Any, context: Context, task: Job) -> dict[str, Any]:
        """Returns {"prediction": settled Prediction, "verdict": Verdict, "started": t0, "done": t1}."""
        started = time.perf_counter()
        pred = pipeline.predict_one(task.image, context)
        done = time.perf_counter()
        verdict = decide(pred, context)
        return {"prediction": settle(pred, verdict), "verdict": verdict, "started": started, "done": done}


def answer_future(job: Job, outcome: Outcome[Job], device: str) -> None:
    """Settle the request's future from its outcome: a Result, or the error that failed the image.

    Args:
        job: the request's job.
        outcome: what `run_task` made of it.
        device: the worker's device (reported in the answer).
    """
    if outcome.status == "ok" and outcome.value is not None:
        v = outcome.value
        job.future.set_result(Result(v["prediction"], v["verdict"], v["started"] - job.enqueued,
                                     v["done"] - v["started"], device))
    elif outcome.fatal is not None:
        job.future.set_exception(outcome.fatal)
    else:
        failure = outcome.failure
        job.future.set_exception(failure.cause if failure and failure.cause else RuntimeError(
            failure.reason if failure else "failed"))


@dataclass
class Result:
    """A prediction with its verdict and where the time went."""

    prediction: Prediction
    verdict: Verdict
    queue_s: float
    inference_s: float
    device: str


def _pipelines_for(lines: dict[str, Line], device: str | None) -> dict[str, Any]:
    """One Pipeline per line, shared between lines whose contexts have the same settings (models load once)."""
    by_settings: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for name, line in lines.items():
        pipeline = Pipeline.from_context(line.context, device=device or None)
        key = pipeline.config.model_dump_json()
        if key not in by_settings:
            _ = pipeline.runner  # build the runner now (a settings error fails at start); warm_up loads the models
            by_settings[key] = pipeline
        out[name] = by_settings[key]
        warm_up(out[name], line)
    return out


def warm_up(pipeline: Any, line: Line) -> None:
    """One prediction before the first request: the first forward pass pays one-off costs (kernel choice,
    lazy buffers) that would otherwise land on the first part of the shift. On one of the context's own
    normal images when it is still there, else on a plain grey image.

    Args:
        pipeline: the line's pipeline.
        line: the product line (its context and normal images).
    """
    image = None
    for path in line.context.normal_images[:1]:
        try:
            image = load_image(path)
        except Exception:  # noqa: BLE001 - the normal images may live elsewhere than the server
            image = None
    if image is None:
        image = LoadedImage(path="warm-up", rgb=np.full((256, 256, 3), 128, np.uint8), original_size=(256, 256))
    try:
        pipeline.predict_one(image, line.context)
    except Exception as exc:  # noqa: BLE001 - a real request will report the problem with its own image
        event("warm-up prediction failed", line=line.name, error=f"{type(exc).__name__}: {exc}")


class ModelWorkers:
    """Start with `start()` (loads the models, raises their error), feed with `submit()`, end with `close()`."""

    def __init__(self, lines: dict[str, Line], devices: list[str | None] | None = None, queue_size: int = 8) -> None:
        self.lines = lines
        self.devices = devices or [None]
        self.queue_size = queue_size
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self.closing = False

    def start(self) -> None:
        """Load every line's models on every device, then start the worker threads."""
        loaded = [_pipelines_for(self.lines, d) for d in self.devices]
        for device, pipelines in zip(self.devices, loaded):
            t = threading.Thread(target=self._work, args=(device or "auto", pipelines), name=f"iapas-worker-{device or 'auto'}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    @property
    def ready(self) -> bool:
        """Workers started, all alive, and not shutting down."""
        return bool(self._threads) and not self.closing and all(t.is_alive() for t in self._threads)

    def depth(self) -> int:
        """Requests waiting plus requests being worked on."""
        return self._queue.qsize() + self._busy

    def submit(self, line: str, image: LoadedImage) -> Future:
        """Queue one image; raise QueueFull at once when there is no room.

        Args:
            line: the product line's name.
            image: the decoded upload.

        Returns:
            The future the `Result` (or the image's error) arrives in.
        """
        if self.closing:
            raise QueueFull("the server is shutting down")
        job = Job(line, image)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self.queue_size} requests are already waiting") from None
        return job.future

    def close(self, timeout: float = 60.0) -> None:
        """Stop the workers: requests still waiting are cancelled (their clients are gone once the server has
        drained), the ones being worked on finish within `timeout`.

        Args:
            timeout: seconds each worker thread gets to finish its image.
        """
        self.closing = True
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.cancel()
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:  # a second close while a worker still holds its job: it stops on the first None
                break
        for t in self._threads:
            t.join(timeout)

    def _work(self, device: str, pipelines: dict[str, Any]) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue  # its request gave up while waiting
            outcome = None
            with self._lock:
                self._busy += 1
            try:
                outcome = run_task(Inspect(), pipelines[job.line], self.lines[job.line].context, job)
                answer_future(job, outcome, device)
            except Exception as exc:  # noqa: BLE001 - the request gets an error answer, the worker lives on
                job.future.set_exception(exc)
            finally:
                with self._lock:
                    self._busy -= 1
            large = job.image.rgb.shape[0] * job.image.rgb.shape[1] >= TRIM_PIXELS
            job = outcome = None  # type: ignore[assignment]  # the answer holds what it needs; drop the rest now
            if large:
                give_memory_back()
