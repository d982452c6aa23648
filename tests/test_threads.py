"""--threads N (config field `threads`) reaches torch, OpenCV, BLAS and the segment pool; bad values exit 2."""
from __future__ import annotations

import os

import cv2
import pytest
import torch
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from iapas.cli import run as run_cmd
from iapas.config import build_config
from iapas.errors import SettingsError
from iapas.pipeline import Pipeline
from iapas import threads
from iapas.threads import apply_threads, available_cpus, current_threads, default_threads
from cli_apps import command_app


@pytest.fixture
def restore_threads():
    before = (torch.get_num_threads(), cv2.getNumThreads(), threads.level_workers())
    yield
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])
    threads.set_level_workers(before[2])


@pytest.mark.parametrize("n", [1, 3])
def test_apply_threads_reaches_torch_opencv_blas_and_segments(n: int, restore_threads) -> None:
    from threadpoolctl import threadpool_info

    assert apply_threads(n) == n
    assert torch.get_num_threads() == n
    assert cv2.getNumThreads() == n
    assert threads.level_workers() == n
    assert threads.level_executor()._max_workers == n
    assert current_threads() == {"torch": n, "opencv": n, "segments": n}
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    assert all(p["num_threads"] == n for p in blas)


def test_default_is_the_cpus_this_process_may_use(restore_threads) -> None:
    assert default_threads() == available_cpus() >= 1
    if hasattr(os, "sched_getaffinity"):
        assert available_cpus() == len(os.sched_getaffinity(0))
    assert apply_threads(None) == available_cpus()


def test_config_threads_reach_the_pipeline(restore_threads) -> None:
    pipe = Pipeline(build_config(profile="offline", threads=1))
    _ = pipe.runner
    assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1


def test_bad_thread_counts_are_settings_errors() -> None:
    with pytest.raises(SettingsError, match="threads"):
        build_config(threads=0)
    with pytest.raises(ValueError):
        apply_threads(0)
    result = CliRunner().invoke(command_app(run_cmd), ["run", "--images", ".", "--out", "/tmp/x", "--threads", "0"])
    assert result.exit_code == 2, result.output


def test_threads_change_no_result_digest() -> None:
    from iapas.config import settings_digest

    a, b = build_config(profile="offline", threads=1), build_config(profile="offline", threads=2)
    assert settings_digest(a, "offline") == settings_digest(b, "offline")
