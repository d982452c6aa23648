"""Context: a versioned JSON an engineer can edit, with arrays in a sidecar npz."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.errors import SettingsError


def test_round_trip_with_arrays(tmp_path: Path) -> None:
    ctx = Context(profile="offline", config=PipelineConfig(), tags=["tile"], final_prompt=["crack", "defect"])
    bank = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    ctx.set_arrays(bank=bank)
    path = ctx.save(tmp_path / "context.json")
    assert (tmp_path / "context.bank.npz").is_file()
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["final_prompt"] == ["crack", "defect"]
    back = Context.load(path)
    assert back.final_prompt == ctx.final_prompt and back.config == ctx.config
    np.testing.assert_array_equal(back.arrays["bank"], bank)


def test_edited_context_is_used(tmp_path: Path) -> None:
    path = Context(profile="paper", config=PipelineConfig(), final_prompt=["a"]).save(tmp_path / "c.json")
    data = json.loads(path.read_text())
    data["final_prompt"] = ["hole", "burr"]
    path.write_text(json.dumps(data))
    assert Context.load(path).final_prompt == ["hole", "burr"]


@pytest.mark.parametrize(
    "content, needle",
    [(None, "does not exist"), ("{not json", "not valid JSON"), ('{"version": 99}', "version 99"),
     ('{"version": 1, "profile": "offline"}', "malformed")],
)
def test_bad_context_files(tmp_path: Path, content: str | None, needle: str) -> None:
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match=needle):
        Context.load(path)


def test_missing_bank_is_reported(tmp_path: Path) -> None:
    ctx = Context(profile="offline", config=PipelineConfig())
    ctx.set_arrays(bank=np.zeros((2, 2), np.float32))
    path = ctx.save(tmp_path / "c.json")
    (tmp_path / "c.bank.npz").unlink()
    with pytest.raises(SettingsError, match="missing"):
        Context.load(path)
