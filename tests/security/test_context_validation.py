"""An edited context is validated as strictly as the config (exit status 2), an unknown field included, its
bank stays inside the context's folder, and no JSON output ever holds NaN or Infinity."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers

from cli_apps import command_app  # noqa: E402
from iapas.cli import run as run_cmd  # noqa: E402
from iapas.config import PipelineConfig  # noqa: E402
from iapas.context import Context  # noqa: E402
from iapas.errors import SettingsError  # noqa: E402
from iapas.io.atomic import atomic_write_json  # noqa: E402



def offline_context(folder: Path) -> Path:
    """A context as the offline profile writes it: JSON + bank sidecar with features and sources."""
    rng = np.random.default_rng(0)
    ctx = Context(
        profile="offline",
        config=PipelineConfig(profile="offline"),
        reference={
            "settings": {"backbone": "efficientnet-lite0", "feature_size": 256, "max_long_side": 1536, "stages": [5, 6],
                         "pool": 3, "k": 1, "sigma": 4.0, "max_bank": 16384, "segment_levels": [[1.0, 0.8, 50]],
                         "segment_size": 256, "segment_combine": "geometric", "segment_smooth": 1.0},
            "mask_threshold": 0.7, "mask_percentile": 99.5, "normal_pixel_mean": 0.2, "normal_pixel_std": 0.1,
            "normal_image_max": [0.9, 1.1],
        },
    )
    ctx.set_arrays(bank_features=rng.normal(size=(20, 512)).astype(np.float32), bank_source=np.arange(20) % 2)  # lite0 5+6
    folder.mkdir(parents=True, exist_ok=True)
    return ctx.save(folder / "context.json")


def edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))  # Python writes NaN / Infinity literally, as a hand edit would


def _set(*keys: str, value: Any) -> Any:
    def change(data: dict) -> None:
        d = data
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return change


BAD_EDITS = {
    "feature_size_20000": _set("reference", "settings", "feature_size", value=20000),
    "segment_size_huge": _set("reference", "settings", "segment_size", value=100000),
    "max_bank_huge": _set("reference", "settings", "max_bank", value=10**9),
    "threshold_nan": _set("reference", "mask_threshold", value=float("nan")),
    "threshold_negative": _set("reference", "mask_threshold", value=-0.5),
    "threshold_zero": _set("reference", "mask_threshold", value=0),
    "threshold_text": _set("reference", "mask_threshold", value="high"),
    "config_feature_size": _set("config", "feature_size", value=20000),
    "bank_parent": _set("reference", "bank_file", value="../elsewhere.bank.npz"),
    "bank_absolute": _set("reference", "bank_file", value="/etc/passwd"),
    "stages_out_of_range": _set("reference", "settings", "stages", value=[9]),
    "pool_even": _set("reference", "settings", "pool", value=4),
    "k_not_int": _set("reference", "settings", "k", value=2.5),
    "unknown_field": _set("reference", "a_field_of_another_version", value={"anything": [1, 2]}),
}


def test_item06_context_validated_like_config(tmp_path: Path) -> None:
    good = offline_context(tmp_path / "good")
    back = Context.load(good)  # a correct context loads
    assert back.arrays["bank_features"].shape == (20, 512)
    for name, change in BAD_EDITS.items():
        path = offline_context(tmp_path / name)
        edit(path, change)
        with pytest.raises(SettingsError) as info:
            Context.load(path)
        assert str(path) in str(info.value) or "bank" in str(info.value), name


def test_item06_bad_bank_file_is_exit_2_not_traceback(tmp_path: Path) -> None:
    app = command_app(run_cmd)
    img = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    cases = {
        "not_npz": lambda p: p.write_bytes(b"this is not an npz archive at all"),
        "npy_inside": lambda p: np.save(p.open("wb"), np.zeros(3)),
        "missing_key": lambda p: np.savez(p, bank_features=np.zeros((4, 8), np.float32)),
        "nan_features": lambda p: np.savez(p, bank_features=np.full((4, 8), np.nan, np.float32), bank_source=np.zeros(4, int)),
    }
    for name, spoil in cases.items():
        ctx = offline_context(tmp_path / name)
        spoil(ctx.parent / "context.bank.npz")
        result = CliRunner().invoke(app, ["segment", "--context", str(ctx), "--images", str(img), "--out",
                                          str(tmp_path / f"out_{name}")], catch_exceptions=False)
        assert result.exit_code == 2, (name, result.stderr)
        assert "bank" in result.stderr and "Traceback" not in result.stderr


def test_item06_json_never_holds_nan_or_infinity(tmp_path: Path) -> None:
    obj = {"a": float("nan"), "b": np.float32("inf"), "c": np.array([1.5, -np.inf]), "d": [{"e": float("-inf")}], "f": 2.0}
    path = atomic_write_json(tmp_path / "x.json", obj)

    def refuse(name: str) -> None:
        raise ValueError(f"{name} in JSON")

    data = json.loads(path.read_text(), parse_constant=refuse)  # strict: no NaN / Infinity literals
    assert data == {"a": None, "b": None, "c": [1.5, None], "d": [{"e": None}], "f": 2.0}
