"""Context: a versioned JSON an engineer can edit, with arrays in a sidecar npz."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.errors import SettingsError
from iapas.settings import thresholds


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


def _offline_context() -> Context:
    cfg = PipelineConfig(profile="offline")
    ctx = Context(profile="offline", config=cfg, tags=["tile"], object_tag="tile",
                  thresholds=thresholds(cfg), models={"backbone": {"id": "efficientnet-lite0", "revision": "pypi"}},
                  reference={"mask_threshold": 1.5, "mask_percentile": 99.5, "normal_pixel_mean": 0.4,
                             "normal_image_max": [1.2, 1.4]})
    rng = np.random.default_rng(1)
    ctx.set_arrays(bank_features=rng.normal(size=(12, 4)).astype(np.float32), bank_source=np.arange(12, dtype=np.int32) % 3)
    return ctx


def test_save_then_load_gives_back_every_field_and_array(tmp_path: Path) -> None:
    ctx = _offline_context()
    back = Context.load(ctx.save(tmp_path / "ctx.json"))
    assert back.model_dump(mode="json") == ctx.model_dump(mode="json")
    assert back.reference.get("bank_file") == "ctx.bank.npz" and set(back.arrays) == {"bank_features", "bank_source"}
    for key, arr in ctx.arrays.items():
        np.testing.assert_array_equal(back.arrays[key], arr)
        assert back.arrays[key].dtype == arr.dtype
    again = Context.load(back.save(tmp_path / "again.json"))  # a loaded context saves and loads the same
    assert again.model_dump(mode="json") == {**ctx.model_dump(mode="json"), "reference": {**ctx.model_dump(mode="json")["reference"], "bank_file": "again.bank.npz"}}


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda d: d["reference"].update(bank_file="../elsewhere.npz"), "no absolute path"),
        (lambda d: d["reference"].update(bank_file="/tmp/x.npz"), "no absolute path"),
        (lambda d: d["reference"].update(mask_threshold=-1.0), "reference.mask_threshold"),
        (lambda d: d["reference"].update(normal_image_max=["a"]), "reference.normal_image_max"),
        (lambda d: d["thresholds"].update(box_threshold="high"), "thresholds.box_threshold"),
        (lambda d: d.update(profile=None), "malformed"),
    ],
)
def test_load_refuses_edited_contexts(tmp_path: Path, edit, needle: str) -> None:
    path = _offline_context().save(tmp_path / "ctx.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError, match=needle):
        Context.load(path)


@pytest.mark.parametrize(
    "arrays, needle",
    [
        ({"bank_features": np.array([[np.nan, 1.0]], np.float32), "bank_source": np.zeros(1, np.int32)}, "finite"),
        ({"bank_features": np.zeros((2, 2), np.float32), "bank_source": np.zeros(3, np.int32)}, "one integer per"),
        ({"bank_features": np.zeros(4, np.float32), "bank_source": np.zeros(4, np.int32)}, "2-D float"),
    ],
)
def test_load_refuses_a_bad_bank(tmp_path: Path, arrays: dict, needle: str) -> None:
    path = _offline_context().save(tmp_path / "ctx.json")
    np.savez(tmp_path / "ctx.bank.npz", **arrays)
    with pytest.raises(SettingsError, match=needle):
        Context.load(path)
