"""The Ray mapper: Stage 2 over a Ray Data dataset of task indices, mapped by a pool of actors.

Why this shape: each actor loads the models once (its constructor) and then takes batches of paths, so
model loading is paid once per actor, not per image; Ray Data streams the batches to whichever actor is
free, across every node of the cluster, and restarts an actor whose process dies (retrying its batch).
Workers write the per-image files themselves (atomically, to the same layout as the local engine), so the
run's output folder must be reachable from every node (a shared file system); only small per-image
outcomes travel back, and the driver keeps summary.json and the resume cache exactly as a local run does.
A retried batch rewrites the same files with the same content, and the driver records each input once.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.engines.base import ImageFailure, ImageWork, Outcome, TaskT, fatal_error, run_task
from iapas.errors import IapasError, SettingsError
from iapas.pipeline import Pipeline

DEFAULT_GPU_FRACTION = 0.5  # two actors share a GPU: the paper profile's models fit twice in 16 GB
MAX_ROWS_PER_BLOCK = 16  # a dead actor's retry redoes at most this many images


@dataclass(frozen=True)
class RaySettings:
    """How to reach the cluster and size the actor pool (None = decide from the cluster's resources)."""

    address: str | None = None
    actors: int | None = None
    gpus_per_actor: float | None = None
    cpus_per_actor: float = 1.0
    # An actor whose process dies is restarted and its unfinished batch retried: Ray Data's own defaults
    # for actor pools (max_restarts=-1, max_task_retries=-1), so nothing is set here.


CONNECT_TIMEOUT_S = 10.0  # to open a TCP connection to the cluster's address before ray.init (which retries for minutes)


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "HOST:PORT" or "ray://HOST:PORT" (IPv6 in brackets), None when there is no port."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _resolve_auto() -> str:
    """The address "auto" means: RAY_ADDRESS, else the cluster last started on this machine (`ray start`)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address  # optional dependency (iapas[ray])

        found = canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError, ImportError) as exc:
        raise SettingsError(f"--ray-address auto: no running Ray cluster found ({str(exc)[:200]}); start one with "
                            "`ray start --head`, or leave --ray-address out to run Ray on this machine") from None
    if not found:
        raise SettingsError("--ray-address auto: no running Ray cluster found; start one with `ray start --head`")
    return found


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, with a clear message, when nothing listens at the cluster's address: ray.init would otherwise
    retry for minutes (and not return to Python, so Ctrl-C and SIGTERM wait too).

    Args:
        address: "auto", "HOST:PORT" or "ray://HOST:PORT".
        timeout: seconds to wait for the TCP connection.

    Raises:
        SettingsError: the address is malformed, unreachable, or Ray Client is missing.
    """
    target = _resolve_auto() if address == "auto" else address
    if address.startswith("ray://"):
        if importlib.util.find_spec("grpc") is None:
            raise SettingsError(f"--ray-address {address}: Ray Client needs grpcio: pip install 'iapas[ray]' "
                                "(which installs ray[client])")
    hp = _host_port(target)
    if hp is None:
        raise SettingsError(f"--ray-address {address}: give auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection(hp, timeout=timeout).close()
    except OSError as exc:
        raise SettingsError(f"--ray-address {address}: cannot reach {hp[0]}:{hp[1]} within {timeout:g} s "
                            f"({exc.strerror or type(exc).__name__}); is the cluster running (`ray start --head`)?") from None


def connect(address: str | None) -> bool:
    """Join the cluster at `address` ("auto", "HOST:PORT", "ray://HOST:10001"), or start a local instance
    when None (whatever RAY_ADDRESS says: only `--ray-address auto` follows it).

    Args:
        address: the cluster's address, or None for a local instance.

    Returns:
        True when this call started Ray (so the caller shuts it down again).
    """
    try:
        import ray  # optional dependency (iapas[ray])
        import ray.data
    except ImportError:
        raise SettingsError("--engine ray needs Ray: pip install 'iapas[ray]'") from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset chatter under the CLI's progress bar
    if ray.is_initialized():
        return False
    if address:
        check_reachable(address)
    # ray.init replaces this process's SIGTERM handler with a plain exit; the CLI's own handler (which saves
    # what was done and records `interrupted: true`) is put back right after
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            saved = os.environ.pop("RAY_ADDRESS", None)  # "local" already ignores it; the Ray processes must too
            try:
                ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
            finally:
                if saved is not None:
                    os.environ["RAY_ADDRESS"] = saved
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"--ray-address {address}" if address else "a local Ray instance"
        raise SettingsError(f"cannot start or reach {where}: {exc}") from None
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return True


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Join (or start) Ray for the duration of the block; shut it down after when this block started it.

    Args:
        address: as `connect`.
    """
    started = connect(address)
    try:
        yield
    finally:
        if started:
            import ray  # optional dependency (iapas[ray])

            ray.shutdown()


def pool_size(settings: RaySettings, n_jobs: int) -> tuple[int, float, float]:
    """The actor pool's size from the settings or the cluster's resources.

    Args:
        settings: the Ray settings (actors, CPUs and GPUs per actor; None fields decided here).
        n_jobs: the number of tasks (never more actors than tasks).

    Returns:
        (actors, cpus per actor, gpus per actor).
    """
    import ray  # optional dependency (iapas[ray])

    res = ray.cluster_resources()
    gpus = float(res.get("GPU", 0.0))
    gpu_each = settings.gpus_per_actor if settings.gpus_per_actor is not None else (DEFAULT_GPU_FRACTION if gpus else 0.0)
    if settings.actors:
        actors = settings.actors
    elif gpu_each > 0:
        actors = max(1, int(gpus / gpu_each))
    else:
        actors = max(1, int(float(res.get("CPU", 1.0)) // max(settings.cpus_per_actor, 1e-9)))
    return max(1, min(actors, n_jobs)), settings.cpus_per_actor, gpu_each


class StageTwoWorker:
    """A Ray actor: the models of one pipeline, loaded once, applied to batches of task indices."""

    def __init__(self, work: ImageWork[Any], config: PipelineConfig, context: Context, tasks: Sequence[Any],
                 cwd: str | None = None) -> None:
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)  # relative input and output paths mean what they meant to the driver (same node or shared fs)

        self.work = work
        self.tasks = list(tasks)
        # arrays that come through Ray's object store are read-only views; the profile wants its own copy
        context.set_arrays(**{k: np.array(v) for k, v in context.arrays.items()})
        self.context = context
        self.pipeline = Pipeline(config)
        self.load_error: IapasError | None = None
        try:
            _ = self.pipeline.runner  # build the runner once per actor (models load lazily on its first image)
        except IapasError as exc:
            self.load_error = exc

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """Process the batch's tasks; return one row per task: status, error text and type, value as JSON."""
        rows: dict[str, list[Any]] = {"index": [], "status": [], "error": [], "error_path": [], "error_type": [],
                                      "unexpected": [], "value": []}
        for raw in batch["index"]:
            index = int(raw)
            task = self.tasks[index]
            if self.load_error is not None:
                outcome: Outcome[Any] = Outcome(task, "fatal", fatal=self.load_error)
            else:
                outcome = run_task(self.work, self.pipeline, self.context, task)
            failure = outcome.failure
            rows["index"].append(index)
            rows["status"].append(outcome.status)
            rows["error"].append(str(outcome.fatal) if outcome.fatal else (failure.reason if failure else ""))
            rows["error_path"].append(os.fsencode(failure.path) if failure else b"")
            rows["error_type"].append(type(outcome.fatal).__name__ if outcome.fatal else "")
            rows["unexpected"].append(bool(failure and failure.unexpected))
            rows["value"].append(json.dumps(outcome.value or {}))
        return rows


def _outcome_of(task: Any, row: dict[str, Any]) -> Outcome[Any]:
    """The driver's Outcome for one row an actor sent back (a fatal row is raised as its own error type)."""
    status = str(row["status"])
    if status == "fatal":
        raise fatal_error(str(row["error_type"]), str(row["error"]))
    if status == "ok":
        return Outcome(task, "ok", value=json.loads(row["value"]))
    path = os.fsdecode(bytes(row["error_path"])) if bytes(row["error_path"]) else str(task.path)
    return Outcome(task, "failed", failure=ImageFailure(path, str(row["error"]) or "failed", bool(row["unexpected"])))


class RayMapper:
    """Runs the work on a Ray actor pool; yields outcomes as batches finish (in any order).

    Workers write the per-image files themselves, so `work.out_dir` must be reachable from every node;
    `tidy(out_dir)` (the run's partial-file cleanup) is called once every batch is back.
    """

    name = "ray"

    def __init__(self, settings: RaySettings | None = None, tidy: Callable[[Path], Any] | None = None) -> None:
        self.settings = settings or RaySettings()
        self.tidy = tidy

    def map(self, pipeline: Any, context: Context, work: ImageWork[TaskT],
            tasks: Sequence[TaskT]) -> Iterator[Outcome[TaskT]]:
        """Yield one outcome per task as the actors answer; raise the first fatal error.

        Args:
            pipeline: the driver's `Pipeline`; actors rebuild it from its config, with the resolved profile.
            context: the Stage 1 context (shipped to every actor).
            work: the per-image function (pickled to the actors).
            tasks: the images to process.

        Returns:
            An iterator of "ok" / "failed" outcomes, one per task, in the order batches finish.
        """
        tasks = list(tasks)
        if not tasks:
            return
        config = pipeline.resolved_config  # workers must not re-resolve "auto"
        with ray_session(self.settings.address):
            yield from self._run(config, context, work, tasks)
            # Every batch has come back, so no live writer is left: a temp file here belongs to an actor that
            # was killed mid-write (Ray retried its batch on a new actor). The folder lock keeps other runs out.
            if self.tidy is not None:
                self.tidy(work.out_dir)

    def _run(self, config: PipelineConfig, context: Context, work: ImageWork[TaskT],
             tasks: list[TaskT]) -> Iterator[Outcome[TaskT]]:
        import ray  # optional dependency (iapas[ray])

        data_ctx = ray.data.DataContext.get_current()
        data_ctx.enable_progress_bars = False  # the CLI draws its own
        data_ctx.print_on_execution_start = False
        actors, cpus, gpus = pool_size(self.settings, len(tasks))
        rows_per_block = max(1, min(MAX_ROWS_PER_BLOCK, math.ceil(len(tasks) / (actors * 4))))
        ds = ray.data.from_items([{"index": i} for i in range(len(tasks))],
                                 override_num_blocks=math.ceil(len(tasks) / rows_per_block))
        # each actor runs with the threads it reserved (one per CPU) unless --threads says otherwise: the float
        # sums inside a convolution depend on the thread count, so this keeps a Ray run byte-identical to a local
        # run with the same --threads (1 by default), instead of every actor taking all the machine's cores
        config = config if config.threads else config.model_copy(update={"threads": max(1, int(cpus))})
        resources: dict[str, Any] = {"num_cpus": cpus}
        if gpus > 0:
            resources["num_gpus"] = gpus
        mapped = ds.map_batches(
            StageTwoWorker,
            fn_constructor_kwargs={"work": work, "config": config, "context": context, "tasks": tasks,
                                   "cwd": os.getcwd()},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            **resources,
        )
        seen: set[int] = set()
        for row in mapped.iter_rows():
            index = int(row["index"])
            if index in seen or not 0 <= index < len(tasks):  # a retried batch already reported: record each once
                continue
            seen.add(index)
            yield _outcome_of(tasks[index], row)
        for index, task in enumerate(tasks):
            if index not in seen:
                yield Outcome(task, "failed", failure=ImageFailure(str(task.path), "no result came back from the Ray workers",
                                                                   unexpected=True))
