"""Session-wide tiny Stage 2 model folders for the tests (built once per test process, on first use).

Test modules import the fixtures they need (`from tiny.stage2_fixtures import tiny_gdino`); the
folders are cached in this module so importing a fixture into several modules still builds each
model only once.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


_BUILT: dict[str, Path] = {}


def _once(name: str, factory: pytest.TempPathFactory, build: Callable[[Path], Path]) -> Path:
    if name not in _BUILT or not _BUILT[name].is_dir():
        _BUILT[name] = build(factory.mktemp(name))
    return _BUILT[name]


@pytest.fixture(scope="session")
def tiny_gdino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny.detection_models import build_tiny_grounding_dino

    return _once("gdino", tmp_path_factory, build_tiny_grounding_dino)


@pytest.fixture(scope="session")
def tiny_mm_gdino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny.detection_models import build_tiny_grounding_dino

    return _once("mm_gdino", tmp_path_factory, lambda p: build_tiny_grounding_dino(p, seed=1, mm=True))


@pytest.fixture(scope="session")
def tiny_owlv2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny.detection_models import build_tiny_owlv2

    return _once("owlv2", tmp_path_factory, build_tiny_owlv2)


@pytest.fixture(scope="session")
def tiny_sam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny.detection_models import build_tiny_sam

    return _once("sam", tmp_path_factory, build_tiny_sam)


@pytest.fixture(scope="session")
def tiny_sam_hq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny.detection_models import build_tiny_sam

    return _once("sam_hq", tmp_path_factory, lambda p: build_tiny_sam(p, hq=True))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run the tiny models on one intra-op thread, restored afterwards.

    Their ops take microseconds; with two threads on a busy 2-core machine every op waits for the
    second thread to be scheduled, which made a 40 ms detection take seconds.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
