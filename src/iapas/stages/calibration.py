"""Calibration of distance maps into scores, robust to an odd image, and warnings about the normal set.

Why robust: one percentile of every normal pixel pooled together is moved by a single odd normal
image (a 2000x60 strip among 900x900 photos, a frame from another product) with many high-distance
pixels: one such image can raise it from 41.6 to 99.3 and empty every defect mask. So each normal image
gives its own percentile and the threshold is their median: one image in ten cannot move a median far. The same rule calibrates zero-shot batches, whose
"normal images" are the test images themselves (defects are rare, so the median image is clean).

The score map is relu(d - floor) / (relu(d - floor) + threshold - floor): exactly zero where the distance
is at most the floor (the image looks normal there), 0.5 at the threshold, monotone in between and
above (rankings above the floor are those of the raw distance), and below 1.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONSTANT_STD = 2.0  # grey-level standard deviation (0-255) under which an image counts as near-constant
OUTLIER_SCORE_RATIO = 3.0  # an image whose percentile is this many times the median one is an outlier
OUTLIER_SHAPE_RATIO = 2.0  # long side this many times off the median: an outlier
# aspect ratio this many times off the median: cannot be the same product. Tiles cut from a texture vary
# in shape by nature (MTD's defect-free tiles run from 0.36 to 2.6 around a median of 0.86: at most 3.0x off)
OUTLIER_ASPECT_RATIO = 4.0


@dataclass(frozen=True)
class Calibration:
    """Floor and threshold of raw distances, from per-image percentiles."""

    floor: float
    threshold: float
    image_thresholds: tuple[float, ...]  # each image's own high percentile

    def to_json(self) -> dict[str, object]:
        return {"mask_threshold": self.threshold, "score_floor": self.floor,
                "image_thresholds": [round(v, 6) for v in self.image_thresholds]}


def calibrate(maps: Sequence[np.ndarray], percentile: float, floor_percentile: float) -> Calibration:
    """Median over the images of each map's `percentile` (threshold) and `floor_percentile` (floor).

    Args:
        maps: raw distance maps (any shapes), one per image scored as normal.
        percentile: high percentile that defines the mask threshold, e.g. 99.5.
        floor_percentile: lower percentile that defines the floor, e.g. 95 (must be below `percentile`).

    Returns:
        The calibration; threshold > floor >= 0 always (degenerate sets get a tiny positive span).
    """
    if not maps:
        raise ValueError("calibration needs at least one map")
    highs = np.array([float(np.percentile(m, percentile)) for m in maps])
    lows = np.array([float(np.percentile(m, floor_percentile)) for m in maps])
    threshold = float(np.median(highs))
    floor = max(0.0, float(np.median(lows)))
    if threshold <= floor:  # constant maps (blank normal images): keep the mapping defined
        top = max(float(max(m.max() for m in maps)), threshold, 0.0)
        floor, threshold = min(floor, top), max(top, floor) + 1e-6
    return Calibration(floor=floor, threshold=threshold, image_thresholds=tuple(float(v) for v in highs))


def calibrated(raw: np.ndarray, threshold: float, floor: float = 0.0, trace: float = 0.0) -> np.ndarray:
    """Raw distances -> scores in [0, 1): 0 up to `floor`, 0.5 at `threshold`.

    With `trace` > 0 and anything above the floor, pixels at or below it keep the order of their distances
    as a trace under `trace` x the map's peak (raw / floor scaled into [0, trace x peak)): every pixel no longer
    ties at 0, so pixel rankings (AUROC, AP) see the order the distances hold, while every threshold a decision
    uses lies far above the trace. A map with nothing above the floor stays exactly 0 (a per-map min-max, as
    the official protocol applies, cannot stretch it).

    Args:
        raw: (H, W) raw distances (>= 0).
        threshold: the mask threshold (score 0.5), above `floor`.
        floor: distances at or below it score 0 (or the trace).
        trace: share of the peak under which the pixels below the floor are ordered; 0 = all exactly 0.

    Returns:
        (H, W) float32 scores.
    """
    span = max(float(threshold) - float(floor), 1e-12)
    excess = np.maximum(raw - floor, 0.0)
    score = (excess / (excess + span)).astype(np.float32)
    peak = float(score.max()) if score.size else 0.0
    if trace > 0 and peak > 0 and floor > 0:
        below = excess <= 0
        order = np.clip(np.asarray(raw, dtype=np.float64)[below] / float(floor), 0.0, 1.0 - 1e-6)
        score[below] = (trace * peak * order).astype(np.float32)
    return score


def score_outliers(image_thresholds: Sequence[float], ratio: float = OUTLIER_SCORE_RATIO) -> list[int]:
    """Indices of images whose own threshold is `ratio` times the median of the others' (needs 3+ images)."""
    values = np.asarray(image_thresholds, dtype=float)
    if values.size < 3:
        return []
    out = []
    for i, v in enumerate(values):
        rest = float(np.median(np.delete(values, i)))
        if rest > 0 and v > ratio * rest:
            out.append(i)
    return out


def shape_outliers(sizes: Sequence[tuple[int, int]], ratio: float = OUTLIER_SHAPE_RATIO,
                   aspect_ratio: float = OUTLIER_ASPECT_RATIO) -> list[int]:
    """Indices of (width, height) sizes whose long side is `ratio` times off the median, or whose aspect
    ratio is `aspect_ratio` times off the median one (a shape no view of the same product has)."""
    if len(sizes) < 3:
        return []
    aspect = np.array([w / max(h, 1) for w, h in sizes], dtype=float)
    side = np.array([max(w, h) for w, h in sizes], dtype=float)
    ma, ms = float(np.median(aspect)), float(np.median(side))
    return [i for i in range(len(sizes))
            if max(aspect[i] / ma, ma / aspect[i]) >= aspect_ratio or max(side[i] / ms, ms / side[i]) >= ratio]


def is_near_constant(rgb: np.ndarray, std: float = CONSTANT_STD) -> bool:
    """True when the image's grey levels barely vary (blank, black or saturated frames).

    Args:
        rgb: (H, W, 3) uint8 image.
        std: grey-level standard deviation below which the image is near constant.
    """
    grey = rgb.astype(np.float32).mean(axis=-1) if rgb.ndim == 3 else rgb.astype(np.float32)
    return float(grey.std()) < std


def normal_set_warnings(paths: Sequence[str], rgbs: Sequence[np.ndarray], image_thresholds: Sequence[float]) -> list[str]:
    """What is odd about a set of normal images, one sentence each (empty when nothing is).

    Args:
        paths: the normal images' paths, for the messages.
        rgbs: their (H, W, 3) pixels.
        image_thresholds: each one's own calibration percentile (leave-one-out distances).

    Returns:
        Warnings for near-constant images, images of another shape, and images unlike the others.
    """
    warnings = []
    for p, rgb in zip(paths, rgbs):
        if is_near_constant(rgb):
            warnings.append(f"normal image {p} is nearly constant (grey std < {CONSTANT_STD:g}): a blank or black "
                            "frame? Textured parts of every test image will look abnormal against it")
    sizes = [(int(r.shape[1]), int(r.shape[0])) for r in rgbs]
    for i in shape_outliers(sizes):
        warnings.append(f"normal image {paths[i]} is {sizes[i][0]}x{sizes[i][1]}, unlike the other normal images "
                        "(check that it shows the same product); calibration uses the median image, not this one")
    for i in score_outliers(image_thresholds):
        warnings.append(f"normal image {paths[i]} looks unlike the other normal images (its calibration distance "
                        f"is over {OUTLIER_SCORE_RATIO:g}x theirs); calibration uses the median image, not this one")
    return warnings


MASK_SHARE = 0.75  # the mask threshold lies this far from the pixel threshold towards the verdict's (raw distance)
MASK_RELATIVE = 0.5  # a defect pixel also needs this share of its image's peak excess over the floor


@dataclass(frozen=True)
class Decision:
    """Verdict and mask thresholds on the calibrated map scale, and the rule that made them.

    A part is a defect when its map's peak reaches `verdict`; only then does it get a mask: the pixels
    whose score reaches `mask` and whose excess over the floor is at least `mask_relative` x the peak's
    (never above the peak itself, so a defect always has a region); with `mask_plateau`, plateau regions
    are cut again at their blurred edge (stages.mask_rule).
    """

    verdict: float
    mask: float
    mask_relative: float
    rule: str
    target_frr: float
    mask_plateau: float | None = None


def score_of(raw: float, threshold: float, floor: float) -> float:
    """The calibrated score of one raw distance (the scalar form of `calibrated`)."""
    return float(calibrated(np.asarray([raw], dtype=np.float64), threshold, floor)[0])


def verdict_factor(spread: float, target_frr: float) -> float:
    """exp(z x spread), z the standard normal quantile of 1 - target_frr: the image-maximum threshold over
    the median normal image's maximum when normal maxima are log-normal with sd `spread`."""
    from statistics import NormalDist

    if not 0.0 < target_frr < 1.0:
        raise ValueError(f"target false-reject rate must be in (0, 1), got {target_frr}")
    return float(np.exp(NormalDist().inv_cdf(1.0 - target_frr) * spread))


BATCH_QUANTILE = 0.125  # zero-shot: the batch's level is read at this low quantile of its image maxima


def decision_from_maxima(maxima: Sequence[float], threshold: float, floor: float, spread: float,
                         target_frr: float, source: str, quantile: float = 0.5,
                         plateau: float | None = None, mask_base: float | None = None,
                         relative: float = MASK_RELATIVE) -> Decision:
    """The verdict and mask thresholds from the raw map maxima of images that are (mostly) normal.

    Rule: the verdict threshold (raw) is median(maxima) x exp(z(1 - target_frr) x spread). The median of
    ten is stable where a high quantile of ten is not; the spread, how far normal maxima stray above the
    median, is the kind's prior (settings.VERDICT_SPREAD) because ten leave-one-out maxima do not predict
    it (docs/offline-tuning.md). The mask threshold lies 3/4 of the way from the pixel threshold to it (at
    the verdict's when that is the lower one, as in a zero-shot batch of mostly defective parts).

    Args:
        maxima: raw maxima of leave-one-out maps of the normal images (or of a batch, zero-shot).
        threshold, floor: the pixel calibration (raw distances at score 0.5 and 0).
        spread: sd of log maxima of normal parts (the kind's).
        target_frr: share of good parts the verdict may reject.
        source: what `maxima` are, for the rule text.
        quantile: which quantile of `maxima` anchors the rule: 0.5 (the median) for normal images; a low one
            for a zero-shot batch, whose upper part may be defective (0.125 holds while a quarter of the batch
            is good); the factor then spans from that quantile, exp((z(1 - target) - z(quantile)) x spread).
        plateau: the kind's plateau share for the mask (stages.mask_rule; None: no re-cut).
        mask_base: raw distance the mask threshold starts from instead of `threshold` (zero-shot: the pixel
            level of the batch's parts judged ok, when defective parts dominate the batch's calibration).
        relative: the kind's share of the peak's excess a mask pixel needs (`mask_cut`).

    Returns:
        The decision on the calibrated scale.
    """
    values = np.asarray([v for v in maxima if np.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        raise ValueError("the verdict needs at least one normal image's map maximum")
    from statistics import NormalDist

    median = float(np.quantile(values, quantile))
    factor = verdict_factor(spread, target_frr) / float(np.exp(NormalDist().inv_cdf(quantile) * spread))
    verdict_raw = max(median * factor, floor + 1e-9)
    base = threshold if mask_base is None else float(mask_base)
    mask_raw = min(verdict_raw, base + MASK_SHARE * (verdict_raw - base))
    verdict, mask = score_of(verdict_raw, threshold, floor), score_of(mask_raw, threshold, floor)
    which = "median" if quantile == 0.5 else f"{quantile:g}-quantile"
    rule = (f"image score >= {verdict:.4f}: {which} map maximum of {values.size} {source} x {factor:.3f} (log-normal, "
            f"spread {spread:g}, target false-reject rate {target_frr:g}); mask: score >= {mask:.4f} and excess "
            f">= {relative:g} x the peak's"
            + ("" if mask_base is None else " (from the pixel level of the parts judged ok)")
            + ("" if plateau is None else f"; plateau regions (median >= {plateau:g} x peak) cut at their edge"))
    return Decision(verdict=verdict, mask=mask, mask_relative=relative, rule=rule, target_frr=target_frr,
                    mask_plateau=plateau)


def excess_ratio(score: np.ndarray | float) -> np.ndarray:
    """Calibrated score s -> s / (1 - s), the excess over the floor in units of (threshold - floor).

    Args:
        score: calibrated scores of any shape, e.g. an (H, W) map, or one score.
    Returns:
        Same shape as `score`, float64.
    """
    s = np.minimum(np.asarray(score, dtype=np.float64), 1.0 - 1e-9)
    return s / (1.0 - s)


def mask_cut(peak: float, mask: float, mask_relative: float) -> float:
    """The score a pixel of an image whose map peaks at `peak` needs to join the mask."""
    r = max(float(excess_ratio(mask)), mask_relative * float(excess_ratio(peak)))
    return float(min(r / (1.0 + r), peak))
