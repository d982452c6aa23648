"""Regions from a score map: connected components of the binary mask become scored boxes.

The offline profile finds anomalies visually, with no defect word, so its boxes carry the phrase
"anomaly"; the JSON output then has the same shape as the paper profile's (boxes, phrases, scores).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from iapas.types import Box

VISUAL_PHRASE = "anomaly"


def mask_regions(
    score_map: np.ndarray, mask: np.ndarray, min_area: int = 1, phrase: str = VISUAL_PHRASE
) -> tuple[list[Box], np.ndarray]:
    """Boxes (pixel xyxy, exclusive right/bottom) of the 8-connected components of `mask`.

    Each box is scored by the highest score_map value inside its component; components smaller than
    `min_area` pixels are dropped (and removed from the returned mask). Boxes are sorted by score.
    """
    if score_map.shape != mask.shape:
        raise ValueError(f"score map {score_map.shape} and mask {mask.shape} differ in shape")
    labels, n = ndimage.label(mask.astype(bool), structure=np.ones((3, 3), dtype=bool))
    kept = np.zeros(mask.shape, dtype=bool)
    boxes: list[Box] = []
    if n == 0:
        return boxes, kept
    slices = ndimage.find_objects(labels)
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    for i, sl in enumerate(slices):
        if sl is None or areas[i] < min_area:
            continue
        ys, xs = sl
        inside = labels[sl] == i + 1  # per-component peak on its slice (ndimage.maximum sorts the whole map)
        peak = float(score_map[sl][inside].max())
        boxes.append(Box(xyxy=(float(xs.start), float(ys.start), float(xs.stop), float(ys.stop)), phrase=phrase, score=peak))
        kept[sl] |= inside
    boxes.sort(key=lambda b: -b.score)
    return boxes, kept
