"""Regions from a score map: connected components of the binary mask become scored boxes.

The offline profile finds anomalies visually, with no defect word, so its boxes carry the phrase
"anomaly"; the JSON output then has the same shape as the paper profile's (boxes, phrases, scores).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from iapas.types import Detections

VISUAL_PHRASE = "anomaly"


def mask_regions(
    score_map: np.ndarray, mask: np.ndarray, min_area: int = 1, phrase: str = VISUAL_PHRASE
) -> tuple[Detections, np.ndarray]:
    """Boxes (pixel xyxy, exclusive right/bottom) of the 8-connected components of `mask`.

    Each box is scored by the highest score_map value inside its component; components smaller than
    `min_area` pixels are dropped (and removed from the returned mask). Boxes are sorted by score.

    Args:
        score_map: (H, W) float scores.
        mask: (H, W) bool thresholded map.
    Returns:
        (Detections without masks (the components can be many; the returned mask holds them all),
        the (H, W) mask of the kept components).
    """
    if score_map.shape != mask.shape:
        raise ValueError(f"score map {score_map.shape} and mask {mask.shape} differ in shape")
    labels, n = ndimage.label(mask.astype(bool), structure=np.ones((3, 3), dtype=bool))
    kept = np.zeros(mask.shape, dtype=bool)
    xyxy: list[tuple[float, float, float, float]] = []
    scores: list[float] = []
    if n == 0:
        return Detections.empty(), kept
    slices = ndimage.find_objects(labels)
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    for i, sl in enumerate(slices):
        if sl is None or areas[i] < min_area:
            continue
        ys, xs = sl
        xyxy.append((float(xs.start), float(ys.start), float(xs.stop), float(ys.stop)))
        inside = labels[sl] == i + 1  # per-component peak on its slice (ndimage.maximum sorts the whole map)
        scores.append(float(score_map[sl][inside].max()))
        kept[sl] |= inside
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")  # float64, as the map's peaks
    return Detections(xyxy, scores, [phrase] * len(scores))[order], kept
