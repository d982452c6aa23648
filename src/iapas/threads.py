"""One thread budget for every native pool a run uses: torch, OpenCV, BLAS and the segment levels.

Why: torch, OpenCV and OpenBLAS each start one thread per core by default, and their OpenMP workers
spin while they wait. On a machine that other busy processes share, those spinning workers fight
over the cores and a run becomes several times slower than with one thread. `apply_threads(n)`
sets every pool from one number (`--threads N`, config field `threads`); the default is the number
of CPUs this process may run on (its affinity mask, not the machine's core count), so a run
pinned to fewer cores (taskset, containers) does not oversubscribe them. `passive_wait()` asks
OpenMP to sleep instead of spin while it waits, which keeps a shared machine usable; it only works
before torch is imported, so the CLI calls it first thing.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_blas_limits: Any = None  # threadpoolctl's limiter, kept alive so the BLAS limit holds
_level_executor: ThreadPoolExecutor | None = None
_level_workers: int | None = None  # None: one per CPU this process may use


def available_cpus() -> int:
    """CPUs this process may run on (sched affinity where the OS has it, else the core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The thread count used when none is given: one per CPU this process may use."""
    return available_cpus()


def passive_wait() -> None:
    """Let idle OpenMP workers sleep instead of spin (only effective before torch is imported).

    A user's own OMP_WAIT_POLICY wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def apply_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads, OpenCV's, BLAS's and the segment pool's size to n (None = default).

    Args:
        n: threads to use (>= 1), or None for `default_threads()`.

    Returns:
        The thread count applied.
    """
    global _blas_limits
    count = default_threads() if n is None else int(n)
    if count < 1:
        raise ValueError(f"threads must be at least 1, got {count}")
    import torch  # torch: heavy, and only after passive_wait() has had its chance

    torch.set_num_threads(count)
    try:
        import cv2  # cv2: a native pool, started only once passive_wait() has had its chance

        cv2.setNumThreads(count)
    except ImportError:  # OpenCV is only needed by the segment refinement
        pass
    try:
        from threadpoolctl import threadpool_limits  # threadpoolctl: probes the native BLAS libraries

        _blas_limits = threadpool_limits(limits=count)
    except ImportError:
        pass
    set_level_workers(count)
    return count


def current_threads() -> dict[str, int]:
    """The thread counts in force now, per library (for `doctor`, the benches and the tests)."""
    import torch  # torch: heavy, and only after passive_wait() has had its chance

    out = {"torch": int(torch.get_num_threads())}
    try:
        import cv2  # cv2: a native pool, started only once passive_wait() has had its chance

        out["opencv"] = int(cv2.getNumThreads())
    except ImportError:
        pass
    out["segments"] = level_workers()
    return out


def level_workers() -> int:
    """Threads the segment levels run on (at most this many levels are segmented at once)."""
    return _level_workers if _level_workers is not None else default_threads()


def set_level_workers(n: int) -> None:
    """Size the segment level pool to n threads (from `--threads`); the next refinement uses the new pool."""
    global _level_executor, _level_workers
    if n < 1:
        raise ValueError(f"level workers must be at least 1, got {n}")
    if n != _level_workers:
        old, _level_executor, _level_workers = _level_executor, None, n
        if old is not None:
            old.shutdown(wait=False)


def level_executor() -> ThreadPoolExecutor:
    """The pool the segment levels run on: OpenCV and numpy release the GIL, so the levels overlap."""
    global _level_executor
    if _level_executor is None:
        _level_executor = ThreadPoolExecutor(max_workers=level_workers(), thread_name_prefix="iapas-segments")
    return _level_executor
