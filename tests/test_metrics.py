"""iapas.metrics against scikit-learn (AP, AUROC, PR curve) and a naive AUPRO written here."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from iapas.metrics import (
    MetricWarning,
    aupro,
    auroc,
    average_precision,
    f1_max,
    f1_max_fixed_grid,
    pixel_metrics,
    rank_curve,
)

TOL = 1e-9


def sk_f1_max(y: np.ndarray, s: np.ndarray) -> float:
    p, r, _ = precision_recall_curve(y, s)
    d = p + r
    return float(np.max(np.divide(2 * p * r, d, out=np.zeros_like(d), where=d > 0)))


def assert_matches_sklearn(s: np.ndarray, y: np.ndarray) -> None:
    m = pixel_metrics(s, y)
    assert abs(m["ap"] - average_precision_score(y, s)) < TOL
    assert abs(m["auroc"] - roc_auc_score(y, s)) < TOL
    assert abs(m["f1_max"] - sk_f1_max(y, s)) < TOL
    assert m["ap"] == pytest.approx(average_precision(s, y), abs=0)
    assert m["auroc"] == auroc(s, y) and m["f1_max"] == f1_max(s, y)


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=60),
    dtype=st.sampled_from(["float16", "float32", "float64", "int64", "uint8"]),
)
def test_heavy_ties_match_sklearn(data: list[tuple[int, bool]], dtype: str) -> None:
    s = np.array([v for v, _ in data]).astype(dtype)
    y = np.array([b for _, b in data])
    if y.all() or not y.any():
        return
    assert_matches_sklearn(s / (3 if dtype.startswith("float") else 1), y)


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
@settings(max_examples=100, deadline=None)
@given(
    scores=st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=64), min_size=2, max_size=80),
    seed=st.integers(0, 2**16),
)
def test_arbitrary_float64_scores_match_sklearn(scores: list[float], seed: int) -> None:
    s = np.array(scores)
    y = np.random.default_rng(seed).random(s.size) < 0.4
    if y.all() or not y.any():
        return
    assert_matches_sklearn(s, y)


@pytest.mark.parametrize("n,rate", [(10_000, 0.02), (200_000, 0.3), (50_000, 0.001)])
def test_random_large_inputs_match_sklearn(n: int, rate: float) -> None:
    rng = np.random.default_rng(n)
    y = rng.random(n) < rate
    s = (rng.random(n) + 0.3 * y).astype(np.float32)
    assert_matches_sklearn(s, y)
    assert_matches_sklearn(s.astype(np.float16), y)


def test_adversarial_inputs() -> None:
    y = np.array([0, 1, 0, 0, 1, 0], dtype=bool)
    assert_matches_sklearn(np.full(6, 0.7), y)  # all scores equal
    one = np.zeros(50, dtype=bool)
    one[17] = True
    rng = np.random.default_rng(0)
    assert_matches_sklearn(rng.random(50), one)  # one positive
    assert_matches_sklearn(rng.random(50), ~one)  # one negative
    assert_matches_sklearn(np.array([-0.0, 0.0, 0.0, -0.0]), np.array([1, 0, 1, 0]))  # signed zeros tie
    assert_matches_sklearn(np.array([1.0, 1 + 1e-12, 1 + 2e-12, 1.0]), np.array([0, 1, 1, 0]))  # float64 detail
    assert_matches_sklearn(np.array([-3.5, -1e-30, 1e30, 2.0]), np.array([0, 1, 1, 0]))
    assert_matches_sklearn(np.array([0.2, 0.9, 0.9, 0.9, 0.1]), np.array([1, 0, 1, 0, 1]))


def test_constant_scores_notes_and_values() -> None:
    m = pixel_metrics(np.zeros(8), np.array([1, 0, 0, 0, 1, 0, 0, 0]))
    assert m["ap"] == pytest.approx(0.25) and m["auroc"] == 0.5
    assert any("all scores are equal" in n for n in m["notes"])


def test_degenerate_inputs_give_nan_with_reason() -> None:
    s = np.array([0.1, 0.5, 0.9])
    with pytest.warns(MetricWarning, match="no positive"):
        assert np.isnan(average_precision(s, np.zeros(3)))
    with pytest.warns(MetricWarning, match="no negative"):
        assert np.isnan(auroc(s, np.ones(3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert average_precision(s, np.ones(3)) == 1.0  # sklearn's value when every sample is positive
        assert f1_max(s, np.ones(3)) == 1.0
    m = pixel_metrics(s, np.zeros(3))
    assert np.isnan(m["f1_max"]) and np.isnan(m["auroc"]) and m["notes"]


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        pixel_metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        pixel_metrics(np.array([0.1, np.nan]), np.array([0, 1]))
    with pytest.raises(ValueError, match="0/1"):
        pixel_metrics(np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="no scores"):
        pixel_metrics(np.array([]), np.array([]))


def test_f1_max_is_exact_and_beats_any_grid() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(3000) < 0.1
    s = rng.random(3000) ** 3 + 0.2 * y
    brute = max(
        2 * np.sum(y & (s >= t)) / (np.sum(s >= t) + y.sum()) for t in np.unique(s)
    )
    assert f1_max(s, y) == pytest.approx(brute, abs=1e-12)
    assert f1_max(s, y) >= f1_max_fixed_grid(np.clip(s, 0, 1), y)


def test_fixed_grid_f1_matches_a_loop_over_100_thresholds() -> None:
    rng = np.random.default_rng(4)
    y = rng.random(5000) < 0.2
    s = np.clip(rng.random(5000) * 0.7 + 0.3 * y, 0, 1).astype(np.float32)
    naive = 0.0
    for t in np.linspace(0, 1, 100):
        pred = s >= t
        tp = np.sum(pred & y)
        naive = max(naive, 2 * tp / (pred.sum() + y.sum()))
    assert f1_max_fixed_grid(s, y) == pytest.approx(naive, abs=1e-12)
    assert pixel_metrics(s, y, f1_grid=100)["f1_max_grid"] == pytest.approx(naive, abs=1e-12)


def test_rank_curve_counts() -> None:
    c = rank_curve(np.array([0.3, 0.3, 0.9, 0.1]), np.array([1, 0, 1, 0]))
    assert c.thresholds.tolist() == pytest.approx([0.9, 0.3, 0.1])
    assert c.tps.tolist() == [1, 2, 2] and c.fps.tolist() == [0, 1, 2]
    tp, fp = c.counts_at(np.array([1.0, 0.5, 0.3, 0.0]))
    assert tp.tolist() == [0, 1, 2, 2] and fp.tolist() == [0, 0, 1, 2]


# ------------------------------------------------------------------ AUPRO


def naive_aupro(maps: list[np.ndarray], masks: list[np.ndarray], limit: float = 0.3) -> float:
    """Loop over every distinct score: mean per-region overlap vs FPR, trapezoid to `limit`, / limit."""
    n_normal = sum(int((~g).sum()) for g in masks)
    xs, ys = [0.0], [0.0]
    all_scores = np.unique(np.concatenate([m.ravel() for m in maps]))[::-1]
    for t in all_scores:
        fp = sum(int(((m >= t) & ~g).sum()) for m, g in zip(maps, masks))
        overlaps = []
        for m, g in zip(maps, masks):
            lab, n = ndimage.label(g, structure=np.ones((3, 3)))
            for i in range(1, n + 1):
                r = lab == i
                overlaps.append(float((m[r] >= t).mean()))
        xs.append(fp / n_normal)
        ys.append(float(np.mean(overlaps)))
    area = 0.0
    for i in range(1, len(xs)):
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        if x1 <= limit:
            area += 0.5 * (y0 + y1) * (x1 - x0)
        else:
            if x0 < limit:
                y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
                area += 0.5 * (y0 + y_lim) * (limit - x0)
            break
    return area / limit


def _random_case(seed: int, n_img: int = 4, size: int = 24, levels: int = 12):
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for i in range(n_img):
        g = np.zeros((size, size), dtype=bool)
        if i % 3 != 2:  # some images are normal
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(0, size - 5, 2)
                g[y : y + rng.integers(1, 5), x : x + rng.integers(1, 6)] = True
        noise = rng.integers(0, levels, (size, size)) / levels
        maps.append((noise * 0.7 + 0.35 * g * rng.random()).astype(np.float32))
        masks.append(g)
    return maps, masks


@pytest.mark.parametrize("seed", range(6))
def test_aupro_matches_naive_reference(seed: int) -> None:
    maps, masks = _random_case(seed)
    assert aupro(maps, masks) == pytest.approx(naive_aupro(maps, masks), abs=1e-9)
    assert aupro(np.stack(maps), np.stack(masks)) == pytest.approx(naive_aupro(maps, masks), abs=1e-9)


def test_aupro_other_limits_and_known_values() -> None:
    maps, masks = _random_case(11, levels=5)
    for lim in (0.05, 0.3, 1.0):
        assert aupro(maps, masks, lim) == pytest.approx(naive_aupro(maps, masks, lim), abs=1e-9)
    g = np.zeros((10, 10), dtype=bool)
    g[2:4, 2:4] = True
    assert aupro([g.astype(np.float32)], [g]) == pytest.approx(1.0)  # perfect map
    assert aupro([np.zeros((10, 10))], [g]) == pytest.approx(0.15)  # constant map: diagonal ROC-like line


def test_aupro_regions_count_equally_and_use_8_connectivity() -> None:
    g = np.zeros((12, 12), dtype=bool)
    g[1, 1] = g[2, 2] = True  # diagonal neighbours: one region with a 3x3 structure
    g[6:11, 6:11] = True  # a big second region
    m = np.zeros((12, 12), dtype=np.float32)
    m[1, 1] = m[2, 2] = 1.0  # small region found, big one missed
    # region-wise: PRO = 0.5 at FPR 0 for the first step; pixel-wise it would be 2/27
    assert aupro([m], [g]) == pytest.approx(naive_aupro([m], [g]), abs=1e-12)
    assert aupro([m], [g]) > 0.5


def test_aupro_degenerate_is_nan() -> None:
    assert np.isnan(aupro([np.random.rand(5, 5)], [np.zeros((5, 5), bool)]))
    assert np.isnan(aupro([np.random.rand(5, 5)], [np.ones((5, 5), bool)]))
    with pytest.raises(ValueError, match="shape"):
        aupro([np.zeros((4, 4))], [np.zeros((5, 5), bool)])
