"""Figures at the operating point: what an inspector gets at the context's own thresholds.

Threshold-free metrics (AP, F1-max, AUROC) say how well a map ranks; these say how the verdict and the
masks the tool writes turn out: good parts flagged, defective parts missed, image F1 at the verdict
threshold, pixel F1 of the written masks (an ok part's mask is empty) and regions per good part. They are
computed from the cached maps and the thresholds, so a rerun with other thresholds predicts nothing again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from iapas.stages.mask_rule import MIN_REGION_PIXELS, defect_pixels, keep_regions, min_region_area

OPERATING_KEYS = ("good_flagged", "defective_missed", "image_f1", "pixel_f1", "regions_per_good")


@dataclass(frozen=True)
class OperatingPoint:
    """The thresholds of one category's context (map-score scale) and the rule that set them."""

    verdict: float
    mask: float
    mask_relative: float
    rule: str
    mask_plateau: float | None = None

    @classmethod
    def from_thresholds(cls, th: dict[str, Any] | None) -> "OperatingPoint | None":
        """From a context's `thresholds` (or a record's copy of them); None without a verdict threshold."""
        if not th or th.get("verdict") is None:
            return None
        verdict = float(th["verdict"])
        mask = float(th["mask"]) if th.get("mask") is not None else min(0.5, verdict)
        return cls(verdict, mask, float(th.get("mask_relative") or 0.0), str(th.get("verdict_rule") or ""),
                   th.get("mask_plateau"))

    def to_json(self) -> dict[str, Any]:
        return {"verdict": round(self.verdict, 6), "mask": round(self.mask, 6),
                "mask_relative": self.mask_relative, "rule": self.rule,
                **({"mask_plateau": self.mask_plateau} if self.mask_plateau is not None else {})}


def f1(tp: int, fp: int, fn: int) -> float:
    return 2.0 * tp / (2.0 * tp + fp + fn) if tp + fp + fn else float("nan")


def decided_masks(maps: np.ndarray, scores: np.ndarray, point: OperatingPoint) -> np.ndarray:
    """(N, S, S) masks as written: empty for parts judged ok; otherwise each defect's pixels (stages.mask_rule)
    in regions of at least the profile's minimum size, or the region holding the peak."""
    out = np.zeros(maps.shape, dtype=bool)
    min_area = min_region_area(maps[0].size) if len(maps) else MIN_REGION_PIXELS
    for i in np.flatnonzero(scores >= point.verdict):
        pixels = defect_pixels(maps[i], float(scores[i]), point.mask, point.mask_relative, point.mask_plateau)
        out[i] = keep_regions(maps[i], pixels, min_area)
    return out


def region_count(mask: np.ndarray) -> int:
    """Connected components (8-connected) at least the profile's minimum region size."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return 0
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= min_region_area(mask.size)).sum())


def operating_metrics(maps: np.ndarray, masks: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                      point: OperatingPoint | None) -> dict[str, Any]:
    """The operating-point figures of one category.

    Args:
        maps: (N, S, S) raw maps at the evaluation size (not normalised).
        masks: (N, S, S) bool ground truth.
        labels: (N,) True for defective parts.
        scores: (N,) image scores (the profile's, on the map scale).
        point: the context's thresholds; None gives NaN figures (a context without a verdict threshold).

    Returns:
        good_flagged, defective_missed (fractions), image_f1 (at the verdict threshold), pixel_f1 (of the
        decided masks), regions_per_good (mean region count on good parts), the counts, and the thresholds.
    """
    nan = float("nan")
    if point is None or labels.size == 0:
        return {k: nan for k in OPERATING_KEYS}
    labels = labels.astype(bool)
    flagged = scores >= point.verdict
    good, bad = ~labels, labels
    decided = decided_masks(maps, scores, point)
    tp = int((decided & masks).sum())
    fp = int((decided & ~masks).sum())
    fn = int((~decided & masks).sum())
    return {
        "good_flagged": float(flagged[good].mean()) if good.any() else nan,
        "defective_missed": float((~flagged[bad]).mean()) if bad.any() else nan,
        "image_f1": f1(int((flagged & bad).sum()), int((flagged & good).sum()), int((~flagged & bad).sum())),
        "pixel_f1": f1(tp, fp, fn) if masks.any() else nan,
        "regions_per_good": float(np.mean([region_count(decided[i]) for i in np.flatnonzero(good)])) if good.any() else nan,
        "n_good_flagged": int((flagged & good).sum()),
        "n_defective_missed": int((~flagged & bad).sum()),
        "thresholds": point.to_json(),
    }
