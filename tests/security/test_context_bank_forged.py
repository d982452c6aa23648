"""A context's .bank.npz is checked from its zip directory and .npy headers before any array is read: a
compressed bomb, a header announcing a huge array and a feature width the backbone does not make are all
refused with one line and exit status 2."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from files_support import images, invoke, run_app
from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.errors import SettingsError

SETTINGS = {"backbone": "efficientnet-lite0", "feature_size": 128, "max_long_side": 1536, "stages": [2, 3],
            "pool": 3, "k": 1, "sigma": 4.0, "max_bank": 16384}
WIDTH = 40 + 80  # lite0 stages 2 and 3


def context_with(folder: Path, features: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ctx = Context(profile="offline", config=PipelineConfig(profile="offline"),
                  reference={"settings": SETTINGS, "mask_threshold": 0.7, "mask_percentile": 99.5})
    ctx.set_arrays(bank_features=features, bank_source=np.zeros(len(features), np.int32))
    return ctx.save(folder / "context.json")


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()  # magic string included


def write_bank(path: Path, features: bytes, rows: int = 4) -> None:
    """An npz whose bank_features member holds `features` (header + data, as given) and a valid bank_source."""
    source = io.BytesIO()
    np.save(source, np.zeros(rows, np.int32))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bank_features.npy", features)
        zf.writestr("bank_source.npy", source.getvalue())


def no_array_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("np.load reached on a forged bank")

    monkeypatch.setattr(np, "load", refuse)


def test_compressed_bomb_refused_before_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = context_with(tmp_path / "c", np.zeros((4, WIDTH), np.float32))
    rows = 64 * 1024 * 1024 // (WIDTH * 4)  # a 64 MB zero array: a few hundred KB compressed
    write_bank(path.with_suffix(".bank.npz"), npy_header((rows, WIDTH)) + bytes(rows * WIDTH * 4), rows)
    assert path.with_suffix(".bank.npz").stat().st_size < 2_000_000
    no_array_read(monkeypatch)
    with pytest.raises(SettingsError, match="unpacks to"):
        Context.load(path)


def test_header_announcing_a_huge_array_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = context_with(tmp_path / "c", np.zeros((4, WIDTH), np.float32))
    write_bank(path.with_suffix(".bank.npz"), npy_header((10**6, 10**6)) + bytes(4 * WIDTH * 4))
    no_array_read(monkeypatch)
    with pytest.raises(SettingsError, match="announces shape"):
        Context.load(path)


def test_width_other_than_the_backbones_refused(tmp_path: Path) -> None:
    path = context_with(tmp_path / "c", np.zeros((4, 8), np.float32))
    with pytest.raises(SettingsError, match=f"8 features.*make {WIDTH}"):
        Context.load(path)


def test_rows_above_max_bank_refused(tmp_path: Path) -> None:
    path = context_with(tmp_path / "c", np.zeros((16385, WIDTH), np.float32))
    with pytest.raises(SettingsError, match="more than max_bank"):
        Context.load(path)


def test_matching_bank_loads(tmp_path: Path) -> None:
    feats = np.random.default_rng(0).normal(size=(30, WIDTH)).astype(np.float32)
    back = Context.load(context_with(tmp_path / "c", feats))
    assert np.array_equal(back.arrays["bank_features"], feats)


def test_segment_with_forged_bank_is_exit_2_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = context_with(tmp_path / "c", np.zeros((4, WIDTH), np.float32))
    write_bank(path.with_suffix(".bank.npz"), npy_header((10**6, 10**6)) + bytes(4 * WIDTH * 4))
    code, err = invoke(run_app(monkeypatch), "segment", "--context", path, "--images", images(tmp_path / "i", 1),
                       "--out", tmp_path / "out")
    assert code == 2 and "bank" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_stage_channel_table_matches_the_backbone_code(name: str) -> None:
    from efficientnet_lite_pytorch import EfficientNet

    from iapas.models.backbone import LiteFeatures
    from iapas.settings import STAGE_CHANNELS, feature_width

    model = EfficientNet.from_name(name, image_size=None)  # the architecture only: no weights needed
    stages = LiteFeatures._stage_index(model)
    channels = {s: model._blocks[i]._block_args.output_filters for i, s in enumerate(stages)}
    assert tuple(channels[s] for s in sorted(channels)) == STAGE_CHANNELS[name]
    assert feature_width(name, (5, 6)) == channels[5] + channels[6]
