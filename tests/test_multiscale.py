"""The fine-scale bank of textures (stages.multiscale): its small bank, one backbone pass shared with the deep bank,
and the floor trace of calibrated maps (stages.calibration.calibrated)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iapas.settings import FINE_BANK_ROWS, ReferenceSettings, resolve, verdict_spread
from iapas.stages.calibration import calibrated
from iapas.stages.multiscale import fine_settings


def test_fine_bank_keeps_the_views_and_is_bounded_to_its_rows() -> None:
    deep = ReferenceSettings(stages=(5, 6), fine_stages=(2, 3), augment=("none", "hflip"), coreset=0.1,
                             segment_levels=((100.0, 0.8, 50),), position="auto", fine_max_bank=512)
    fine = fine_settings(deep)
    assert fine.stages == (2, 3) and fine.fine_stages == () and fine.normalize == "l2"
    assert fine.augment == ("none", "hflip") and fine.max_bank == 512  # views kept, rows bounded
    assert fine.segment_levels == () and fine.position == "off"


def test_textures_get_the_fine_bank_and_its_wider_verdict_spread_by_default() -> None:
    from iapas.config import build_config

    texture = resolve(build_config(profile="offline", kind="texture")).reference
    assert texture.fine_stages == (2, 3) and texture.fine_max_bank == FINE_BANK_ROWS and texture.floor_trace == 1e-3
    off = resolve(build_config(profile="offline", kind="texture", fine_stages=[])).reference
    assert off.fine_stages == ()
    assert resolve(build_config(profile="offline", kind="object")).reference.fine_stages == ()
    assert verdict_spread("texture", True) > verdict_spread("texture", False)  # a sum of two scales spreads wider
    assert verdict_spread("object", True) == verdict_spread("object", False)


def test_floor_trace_orders_the_pixels_below_the_floor_under_the_peak() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 10, size=(32, 32))
    raw[5, 5] = 30.0  # one pixel far above the floor
    floor, threshold = 8.0, 12.0
    plain = calibrated(raw, threshold, floor)
    traced = calibrated(raw, threshold, floor, trace=1e-3)
    above = raw > floor
    assert np.array_equal(plain[above], traced[above])  # nothing above the floor moves
    assert (plain[~above] == 0).all()
    peak = float(plain.max())
    low = traced[~above]
    assert (low >= 0).all() and (low < 1e-3 * peak).all() and (low < plain[above].min()).all()
    order = np.argsort(raw[~above], kind="stable")
    assert (np.diff(low[order]) >= 0).all()  # the trace keeps the distances' order
    assert np.unique(low).size > 0.9 * low.size  # ...instead of one tie at 0


def test_a_map_with_nothing_above_the_floor_stays_exactly_zero() -> None:
    raw = np.linspace(0.0, 5.0, 64).reshape(8, 8)
    assert (calibrated(raw, 9.0, 6.0, trace=1e-3) == 0).all()  # a per-map min-max cannot stretch it


def test_floor_trace_changes_no_decision() -> None:
    from iapas.profiles.decisions import prediction_from_map
    from iapas.stages.calibration import Decision

    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 10, size=(64, 64))
    raw[20:30, 20:30] += 12.0
    decision = Decision(verdict=0.55, mask=0.52, mask_relative=0.5, rule="", target_frr=0.02, mask_plateau=0.7)
    a = prediction_from_map("a.png", calibrated(raw, 12.0, 9.0), "offline", [], decision)
    b = prediction_from_map("a.png", calibrated(raw, 12.0, 9.0, trace=1e-3), "offline", [], decision)
    assert a.mask.any() and np.array_equal(a.mask, b.mask) and a.image_score == b.image_score
    assert len(a.boxes) == len(b.boxes)


@pytest.mark.slow
def test_one_backbone_pass_gives_the_maps_of_two_separate_passes(tmp_path: Path) -> None:
    from iapas.models.backbone import load_backbone
    from iapas.stages.reference import build_bank, raw_map, raw_maps

    rng = np.random.default_rng(2)
    normals = [rng.integers(0, 255, size=(96, 160, 3), dtype=np.uint8) for _ in range(3)]
    test = rng.integers(0, 255, size=(90, 150, 3), dtype=np.uint8)
    bb = load_backbone("efficientnet-lite0", "cpu")
    deep = ReferenceSettings(stages=(5, 6), feature_size=96, fine_stages=(2, 3), augment=("none",), sigma=2.0)
    banks = [build_bank(bb, normals, s) for s in (deep, fine_settings(deep))]
    shared = raw_maps(bb, test, [(b, b.tensor()) for b in banks])
    separate = [raw_map(bb, test, b) for b in banks]
    for s, p in zip(shared, separate):
        assert s.shape == test.shape[:2] and np.allclose(s, p, rtol=1e-5, atol=1e-5)

