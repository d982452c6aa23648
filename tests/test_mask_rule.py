"""The mask of a part judged defective: plateau regions cut at their blurred edge, graded regions kept."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from iapas.evaluation.operating import OperatingPoint, operating_metrics
from iapas.stages.calibration import excess_ratio
from iapas.stages.mask_rule import defect_pixels, keep_regions, plateau_recut


def scores_of(excess: np.ndarray) -> np.ndarray:
    return (excess / (1.0 + excess)).astype(np.float32)


def blurred_square(size: int = 128, side: int = 16, height: float = 9.0, base: float = 3.0, sigma: float = 4.0):
    """A uniform square defect on an elevated background, blurred as the profile's maps are."""
    truth = np.zeros((size, size), dtype=bool)
    a = (size - side) // 2
    truth[a:a + side, a:a + side] = True
    excess = gaussian_filter(np.where(truth, height, base), sigma=sigma)
    return scores_of(excess), truth


def test_plateau_recut_brings_a_blurred_square_back_to_its_size() -> None:
    score, truth = blurred_square()
    peak = float(score.max())
    first = defect_pixels(score, peak, mask=0.6, mask_relative=0.5)
    recut = defect_pixels(score, peak, mask=0.6, mask_relative=0.5, plateau=0.7)
    assert first.sum() > 1.4 * truth.sum()  # half the peak's excess over the floor: the shoulder too
    assert 0.7 * truth.sum() <= recut.sum() <= 1.2 * truth.sum()  # half way above the surroundings: the edge
    assert (recut & truth).sum() >= 0.7 * truth.sum() and not (recut & ~first).any()


def test_a_graded_region_keeps_its_first_cut() -> None:
    yy, xx = np.mgrid[:128, :128]
    excess = np.maximum(8.0 - 0.2 * np.hypot(yy - 64, xx - 64), 0.0)  # a cone: rises steadily to its peak
    score = scores_of(excess)
    first = defect_pixels(score, float(score.max()), 0.6, 0.5)
    assert np.median(excess_ratio(score[first])) < 0.7 * excess.max()
    assert np.array_equal(plateau_recut(score, first, 0.7), first)


def test_keep_regions_drops_specks_and_keeps_the_peak_region_when_all_are_small() -> None:
    score = np.zeros((64, 64), dtype=np.float32)
    pixels = np.zeros((64, 64), dtype=bool)
    pixels[10:20, 10:20] = True
    pixels[40, 40] = True
    score[15, 15] = 0.9
    kept = keep_regions(score, pixels, min_area=5)
    assert kept[10:20, 10:20].all() and not kept[40, 40]
    small = np.zeros((64, 64), dtype=bool)
    small[15, 15] = small[40, 40] = True
    only = keep_regions(score, small, min_area=5)
    assert only.sum() == 1 and only[15, 15]


def test_operating_figures_use_the_written_rule() -> None:
    score, truth = blurred_square()
    maps, masks = score[None], truth[None]
    labels, scores = np.array([True]), np.array([float(score.max())])
    plain = operating_metrics(maps, masks, labels, scores, OperatingPoint(0.7, 0.6, 0.5, "r"))
    plateau = operating_metrics(maps, masks, labels, scores, OperatingPoint(0.7, 0.6, 0.5, "r", 0.7))
    assert plateau["pixel_f1"] > 0.8 > plain["pixel_f1"]
    assert plateau["thresholds"]["mask_plateau"] == 0.7 and "mask_plateau" not in plain["thresholds"]


def test_zero_shot_mask_starts_from_the_pixel_level_of_the_parts_judged_ok() -> None:
    from iapas.profiles.zero_shot import ok_pixel_level
    from iapas.stages.calibration import decision_from_maxima

    maxima = [1.0, 1.1, 1.2, 1.05, 5.0, 5.5, 6.0, 5.2, 5.8]  # a batch of mostly defective parts
    highs = [0.5, 0.6, 0.7, 0.55, 3.0, 3.5, 4.0, 3.2, 3.6]
    threshold, floor = 3.2, 0.2  # the batch's calibration: a defective part's pixel level
    first = decision_from_maxima(maxima, threshold, floor, 0.18, 0.02, "pool", quantile=0.125)
    level = ok_pixel_level(maxima, tuple(highs), first, threshold, floor)
    assert level == np.median([0.5, 0.6, 0.7, 0.55])
    lowered = decision_from_maxima(maxima, threshold, floor, 0.18, 0.02, "pool", quantile=0.125, mask_base=level)
    assert lowered.verdict == first.verdict and lowered.mask < first.mask
    assert ok_pixel_level(maxima, tuple(highs), first.__class__(0.0, 0.0, 0.5, "", 0.02), threshold, floor) is None
