"""Which test images each protocol keeps, per dataset reader (docs/fidelity.md, evaluation rows).

The paper protocol reproduces the official IAP-AS loop (test_zsas.py): it skips only test folders
literally named `good` and images without a mask file; MVTec-AD and VisA keep their normal images,
DAGM scores the labelled images of Train and Test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iapas.data import get_reader
from iapas.evaluation.protocols import minmax_per_image, minmax_together, paper_maps
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


def test_sampled_normal_images_never_scored_under_either_protocol(tmp_path: Path) -> None:
    LAYOUTS["mtd"](tmp_path)
    split = get_reader("mtd").load(tmp_path, "mtd")
    sampled = split.normal_pool[:4]
    for protocol in ("standard", "paper"):
        kept = {s.image_path for s in split.test_for(sampled, protocol)}
        assert kept.isdisjoint(sampled) and len(kept) == 16


def test_paper_normalisation_matches_the_official_steps() -> None:
    rng = np.random.default_rng(0)
    full = [rng.random((30, 50)).astype(np.float32) * k for k in (1.0, 3.0, 0.0)]
    import cv2

    # official: normalise each full-resolution map, resize bicubic, then normalise the list together
    official = [cv2.resize((m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else np.zeros_like(m), (40, 40),
                           interpolation=cv2.INTER_CUBIC) for m in full]
    official = np.array(official)
    official = (official - official.min()) / (official.max() - official.min())
    # iapas: the cached record holds the resized raw map and the full-resolution range
    resized = np.array([cv2.resize(m, (40, 40), interpolation=cv2.INTER_CUBIC) for m in full])
    ranges = np.array([[m.min(), m.max()] for m in full])
    ours = paper_maps(resized, ranges)
    np.testing.assert_allclose(ours, official, atol=1e-5)
    assert np.ptp(ours[2]) == 0  # a constant map stays flat (bicubic overshoot of the others shifts its level)


def test_minmax_helpers_handle_constant_input() -> None:
    maps = np.full((2, 3, 3), 5.0, dtype=np.float32)
    assert not minmax_per_image(maps.copy()).any() and not minmax_together(maps.copy()).any()
