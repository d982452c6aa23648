"""Segment pooling: exact segment means, sharper outlines on a real texture, settings stored and honoured."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.stats import gmean
from sklearn.metrics import average_precision_score


from iapas.config import build_config
from iapas.data.synthetic import load_texture, make_category
from iapas.io.images import load_image
from iapas.pipeline import Pipeline
from iapas.stages.calibration import calibrated
from iapas.stages.reference import ReferenceSettings
from iapas.stages.segment_pooling import (
    DEFAULT_LEVELS,
    combine_levels,
    pool_in_segments,
    refine_map,
    segment,
    working_gray,
)


def test_pool_in_segments_gives_each_pixel_its_segment_mean() -> None:
    rng = np.random.default_rng(0)
    score = rng.random((40, 60)).astype(np.float32)
    labels = rng.integers(0, 7, size=(40, 60)).astype(np.int32)
    labels[labels == 3] = 5  # an unused label must not break the lookup
    out = pool_in_segments(score, labels)
    for lab in np.unique(labels):
        sel = labels == lab
        np.testing.assert_allclose(out[sel], score[sel].mean(), rtol=1e-5)


def test_pool_in_segments_resizes_coarse_labels_to_the_map() -> None:
    labels = np.zeros((10, 20), dtype=np.int32)
    labels[:, 10:] = 1  # left and right halves
    score = np.zeros((40, 80), dtype=np.float32)
    score[:, 40:] = 1.0
    score[0, 0] = 4.0
    out = pool_in_segments(score, labels)
    assert out.shape == (40, 80)
    np.testing.assert_allclose(out[:, 40:], 1.0)
    np.testing.assert_allclose(out[:, :40], 4.0 / (40 * 40), rtol=1e-5)


@pytest.mark.parametrize("level", DEFAULT_LEVELS)
def test_segments_never_cross_a_strong_edge(level: tuple[float, float, int]) -> None:
    rng = np.random.default_rng(3)
    gray = np.full((80, 120), 60, dtype=np.float32)
    gray[:, 70:] = 190  # a straight edge between two flat, noisy regions
    gray = np.clip(gray + rng.normal(0, 4, gray.shape), 0, 255).astype(np.uint8)
    labels = segment(gray, level)
    assert labels.shape == gray.shape and labels.dtype == np.int32 and labels.min() == 0
    left, right = set(np.unique(labels[:, :68])), set(np.unique(labels[:, 72:]))
    assert not left & right, "a segment spans both sides of the edge"
    assert len(left | right) < 40, "flat regions should merge into few segments"


def test_working_gray_keeps_aspect_and_never_upscales() -> None:
    rgb = np.zeros((300, 900, 3), dtype=np.uint8)
    assert working_gray(rgb, 128).shape == (128, 384)
    small = np.zeros((50, 70, 3), dtype=np.uint8)
    assert working_gray(small, 128).shape == (50, 70)


def test_refined_map_follows_a_dark_spot_better_than_the_blurred_blob() -> None:
    texture = load_texture("brick")[:192, :256].astype(np.float32)
    yy, xx = np.mgrid[:192, :256]
    spot = (yy - 96) ** 2 + (xx - 128) ** 2 <= 14**2
    img = texture.copy()
    img[spot] *= 0.25  # a dark blowhole-like spot
    rgb = np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    # what a stride-32 reference map looks like: a wide blob, off the spot's centre by a patch fraction
    blob = gaussian_filter(np.roll(spot, (10, 12), axis=(0, 1)).astype(np.float32), 16)
    blob += 0.02 * np.random.default_rng(1).random(spot.shape)
    refined = refine_map(blob.astype(np.float32), rgb)
    ap_blob = average_precision_score(spot.ravel(), blob.ravel())
    ap_refined = average_precision_score(spot.ravel(), refined.ravel())
    assert ap_refined > ap_blob + 0.1, (ap_blob, ap_refined)


def test_levels_combine_by_geometric_or_arithmetic_mean() -> None:
    rng = np.random.default_rng(4)
    pooled = [rng.random((12, 16)).astype(np.float32) + 0.01 for _ in range(4)]
    np.testing.assert_allclose(combine_levels(pooled, "geometric"), gmean(np.stack(pooled), axis=0), rtol=1e-5)
    np.testing.assert_allclose(combine_levels(pooled, "mean"), np.mean(pooled, axis=0), rtol=1e-6)
    pooled[2][3, 5] = 0.0  # one level says "clean": the soft AND gives ~0, not a quarter of the others
    assert combine_levels(pooled, "geometric")[3, 5] < 1e-6
    with pytest.raises(ValueError, match="unknown level combination"):
        combine_levels(pooled, "max")


def _step_case(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """An image with one vertical edge at the middle, and a score map that is 1 on its right side."""
    rng = np.random.default_rng(6)
    gray = np.full((height, width), 60.0)
    gray[:, width // 2 :] = 200.0
    gray = np.clip(gray + rng.normal(0, 3, gray.shape), 0, 255).astype(np.uint8)
    score = np.full((height, width), 0.1, dtype=np.float32)
    score[:, width // 2 :] = 1.0
    return score, np.repeat(gray[..., None], 3, axis=2)


def test_smoothing_is_one_working_pixel_at_any_image_size() -> None:
    levels = ((100.0, 0.8, 20),)
    for height, width, px in ((112, 160, 1), (448, 640, 4)):  # one working pixel = 1 and 4 image pixels
        score, rgb = _step_case(height, width)
        edge = width // 2
        sharp = refine_map(score, rgb, levels, working_size=112, smooth=0.0)
        assert np.unique(sharp).size <= 4, "without smoothing, segment means are piecewise constant"
        soft = refine_map(score, rgb, levels, working_size=112, smooth=1.0)
        row = soft[height // 2]
        assert row[edge - 6 * px] == pytest.approx(sharp[height // 2, edge - 6 * px], abs=0.02)
        assert row[edge - px] > sharp[height // 2, edge - px] + 0.05, "the border must be softened..."
        assert row[edge - 3 * px] < row[edge - px], "...by about a working pixel, not flattened"


def test_no_levels_is_the_identity_and_sizes_must_match() -> None:
    score = np.random.default_rng(2).random((30, 40)).astype(np.float32)
    rgb = np.zeros((30, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(refine_map(score, rgb, levels=()), score)
    with pytest.raises(ValueError, match="differ in size"):
        refine_map(score, np.zeros((31, 40, 3), dtype=np.uint8))


def test_levels_round_trip_and_old_contexts_mean_off() -> None:
    s = ReferenceSettings(segment_levels=DEFAULT_LEVELS, segment_size=96)
    back = ReferenceSettings.from_json(s.to_json())
    assert back == s
    old = s.to_json()
    del old["segment_combine"], old["segment_smooth"]
    first = ReferenceSettings.from_json(old)  # written by the first refinement: plain mean, no smoothing
    assert (first.segment_combine, first.segment_smooth, first.segment_levels) == ("mean", 0.0, DEFAULT_LEVELS)
    del old["segment_levels"]
    assert ReferenceSettings.from_json(old).segment_levels == ()


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_refine_option_reaches_the_saved_context_and_changes_the_maps(tmp_path: Path) -> None:
    cat = make_category(tmp_path / "syn", "brick", n_normal=4, n_test=2, size=(96, 96), anomalous_fraction=1.0, seed=5)
    maps, thresholds, floors, raws = {}, {}, {}, {}
    for refine in ("none", "segments"):
        config = build_config(profile="offline", num_normal=4, feature_size=128, reference_stages=[2, 3, 4], refine=refine,
                              threads=1)
        pipe = Pipeline(config)
        ctx = pipe.fit(cat.root / "normal")
        levels = [list(lv) for lv in ctx.reference.settings.segment_levels]
        assert (levels != []) == (refine == "segments")
        pred = pipe.predict_one(cat.test[0], ctx)
        maps[refine] = pred.score_map
        thresholds[refine] = float(ctx.reference.calibration.threshold)
        floors[refine] = float(ctx.reference.calibration.floor)
        raws[refine] = pipe.runner.reference_map(load_image(cat.test[0]), ctx)
        settings = ctx.reference.settings
        # the threshold is calibrated on refined normal maps too, so a clean normal stays mostly below it
        normal = pipe.predict_one(sorted((cat.root / "normal").iterdir())[0], ctx)
        assert (normal.score_map >= 0.5).mean() < 0.05
    assert not np.allclose(maps["none"], maps["segments"])
    # same bank either way, so the refined map is exactly the unrefined distance map, refined with the
    # context's stored settings, then calibrated with the refined context's floor and threshold
    rgb = np.asarray(Image.open(cat.test[0]).convert("RGB"))
    refined = refine_map(raws["none"], rgb, settings.segment_levels, settings.segment_size,
                         settings.segment_combine, settings.segment_smooth)
    np.testing.assert_allclose(raws["segments"], refined, rtol=1e-4, atol=1e-5)
    expected = calibrated(refined, thresholds["segments"], floors["segments"], settings.floor_trace)
    np.testing.assert_allclose(maps["segments"], expected, rtol=1e-4, atol=1e-5)
