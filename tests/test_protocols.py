"""Which test images each protocol keeps, per dataset reader, and the paper protocol's steps
(docs/fidelity.md, evaluation rows; tests/test_official_evaluation.py compares the whole evaluation).

The paper protocol reproduces the official IAP-AS loop (test_zsas.py): it skips only test folders
literally named `good` and images without a mask file; MVTec-AD and VisA keep their normal images,
DAGM scores the labelled images of Train and Test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iapas.data import get_reader
from iapas.evaluation.protocols import (
    METRIC_KEYS, category_metrics, minmax_per_image, minmax_together, official_map, paper_maps,
)
from iapas.evaluation.summary import mean_row
from synthetic_layouts import LAYOUTS

# dataset -> {category: (standard count, paper count, paper anomalous)}
EXPECTED = {
    "mvtec": {"bottle": (6, 6, 3), "carpet": (5, 5, 3)},
    "mpdd": {"bottle": (6, 3, 3), "carpet": (5, 3, 3)},
    "dtd-synthetic": {"bottle": (6, 3, 3), "carpet": (5, 3, 3)},
    "btad": {"01": (5, 3, 3), "02": (5, 3, 3), "03": (5, 3, 3)},
    "ksdd1": {"ksdd1": (12, 12, 3)},
    "ksdd2": {"ksdd2": (4, 4, 2)},
    "mtd": {"mtd": (20, 20, 6)},
    "dagm2007": {"Class1": (3, 3, 3), "Class10": (2, 1, 1)},
    "visa": {"candle": (4, 4, 2), "pcb1": (4, 4, 3)},
    "folder": {"data": (7, 4, 4)},
}


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_each_protocol_keeps_the_official_images(tmp_path: Path, dataset: str) -> None:
    root = tmp_path / "data"
    LAYOUTS[dataset](root)
    reader = get_reader(dataset)
    for cat, (n_std, n_paper, n_paper_anom) in EXPECTED[dataset].items():
        split = reader.load(root, cat)
        std, paper = split.test_for([], "standard"), split.test_for([], "paper")
        assert len(std) == n_std, (dataset, cat)
        assert len(paper) == n_paper, (dataset, cat)
        assert sum(s.label for s in paper) == n_paper_anom, (dataset, cat)
        assert all(s.image_path.parent.name != "good" for s in paper) or dataset in ("mvtec",)
        assert split.paper_rule  # metrics.json reports it


def test_dagm_paper_selection_adds_labelled_train_images(tmp_path: Path) -> None:
    LAYOUTS["dagm2007"](tmp_path)
    split = get_reader("dagm2007").load(tmp_path, "Class1")
    folders = sorted({s.image_path.parent.name for s in split.test_for([], "paper")})
    assert folders == ["Test", "Train"] and all(s.mask_path is not None for s in split.test_for([], "paper"))
    assert all(p.parent.name == "Train" for p in split.normal_pool) and len(split.normal_pool) == 3


def test_mtd_stage1_tiles_are_scored_under_the_paper_protocol_only(tmp_path: Path) -> None:
    LAYOUTS["mtd"](tmp_path)
    split = get_reader("mtd").load(tmp_path, "mtd")
    sampled = split.normal_pool[:4]
    standard = {s.image_path for s in split.test_for(sampled, "standard")}
    paper = {s.image_path for s in split.test_for(sampled, "paper")}
    assert standard.isdisjoint(sampled) and len(standard) == 16  # standard: Stage 1 never scores its own images
    assert set(sampled) <= paper and len(paper) == 20  # paper: the official loop scores every MT_Free tile
    assert "scored too" in split.paper_rule and "also the normal images" in split.paper_rule


def test_ksdd1_stage1_parts_stay_out_of_both_protocols(tmp_path: Path) -> None:
    LAYOUTS["ksdd1"](tmp_path)
    split = get_reader("ksdd1").load(tmp_path, "ksdd1")
    sampled = split.normal_pool[:2]
    for protocol in ("standard", "paper"):
        assert {s.image_path for s in split.test_for(sampled, protocol)}.isdisjoint(sampled)


def test_official_map_normalises_in_float64_at_full_size_then_resizes_bicubic() -> None:
    import cv2

    rng = np.random.default_rng(0)
    raw = (rng.random((30, 50)) * 3.0).astype(np.float32)
    raw[:10] = 0.7  # a flat region: ties the float32 / resize-first order would break
    ours = official_map(raw, 40)
    assert ours.dtype == np.float64 and ours.shape == (40, 40)
    m = raw.astype(np.float64)
    expected = cv2.resize((m - m.min()) / (m.max() - m.min()), (40, 40), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(ours, expected)
    base = official_map(raw, 40, per_image=False)  # the "base" row keeps its raw map
    assert np.array_equal(base, cv2.resize(m, (40, 40), interpolation=cv2.INTER_CUBIC))
    assert not official_map(np.full((8, 8), 2.0, np.float32), 40).any()  # a constant map becomes zeros


def test_paper_category_step_on_official_maps_and_on_old_raw_records() -> None:
    rng = np.random.default_rng(1)
    maps = rng.random((3, 6, 6)) * np.array([1.0, 3.0, 0.5])[:, None, None]
    together = paper_maps(maps.copy(), None)
    assert together.min() == 0.0 and together.max() == 1.0
    np.testing.assert_array_equal(together, (maps - maps.min()) / (maps.max() - maps.min()))
    ranges = np.array([[0.0, 2.0]] * 3)  # records written before official maps: per-map step first
    np.testing.assert_allclose(paper_maps(maps.copy(), ranges), together)


def test_paper_protocol_counts_a_category_without_defect_pixels_as_zero() -> None:
    maps = np.random.default_rng(2).random((3, 8, 8))
    masks = np.zeros((3, 8, 8), bool)
    out = category_metrics(maps, masks, np.zeros(3), np.zeros(3), "paper")
    assert out["pixel_ap"] == 0.0 and out["pixel_f1_max"] == 0.0 and out["image_ap"] == 0.0
    assert any("count as 0" in n for n in out["notes"])
    std = category_metrics(maps.astype(np.float32), masks, np.zeros(3), maps.max(axis=(1, 2)), "standard")
    assert np.isnan(std["pixel_ap"]) and np.isnan(std["pixel_f1_max"])  # standard: undefined, left out of the mean


def test_paper_mean_rounds_each_category_to_two_decimals_in_percent() -> None:
    rows = {"a": {k: 0.123456 for k in METRIC_KEYS}, "b": {k: 0.5 for k in METRIC_KEYS}}
    for r in rows.values():
        r.update(n_images=1, n_anomalous=1)
    assert mean_row(rows, rounded=True)["pixel_ap"] == pytest.approx((0.1235 + 0.5) / 2, abs=1e-12)
    assert mean_row(rows)["pixel_ap"] == pytest.approx((0.123456 + 0.5) / 2, abs=1e-12)


def test_minmax_helpers_handle_constant_input() -> None:
    maps = np.full((2, 3, 3), 5.0, dtype=np.float32)
    assert not minmax_per_image(maps.copy()).any() and not minmax_together(maps.copy()).any()


@pytest.mark.parametrize(
    ("mode", "levels", "expected"),
    [
        ("L", [0, 1, 127, 128, 129, 255], [0, 0, 0, 0, 1, 1]),  # official: grey > 128 (128 is background)
        ("I;16", [0, 128 * 256, 129 * 256 - 1, 129 * 256, 65535], [0, 0, 0, 1, 1]),  # the high byte
    ],
)
def test_official_mask_rule_is_grey_above_128(tmp_path: Path, mode: str, levels: list[int], expected: list[int]) -> None:
    from PIL import Image

    from iapas.io.images import load_mask

    path = tmp_path / "m.png"
    arr = np.array([levels], dtype=np.uint16 if mode == "I;16" else np.uint8)
    Image.fromarray(arr).save(path)  # uint16 -> a 16-bit PNG
    assert load_mask(path, rule="official").astype(int)[0].tolist() == expected
    publisher = load_mask(path).astype(int)[0].tolist()
    assert publisher != expected  # the standard protocol keeps the publishers' >= half range


def test_official_mask_rule_reads_colour_as_opencv_grey(tmp_path: Path) -> None:
    import cv2
    from PIL import Image

    from iapas.io.images import load_mask

    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [140, 130, 120], [200, 200, 0]]], dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    grey = cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_GRAYSCALE)
    assert load_mask(tmp_path / "c.png", rule="official").tolist() == (grey > 128).tolist()
    assert load_mask(tmp_path / "c.png").all()  # iapas's own rule reads the brightest channel
