"""Regions from a score map: connected components of the binary mask become scored boxes.

The offline profile finds anomalies visually, with no defect word. Given the image, each region's phrase
describes what can be measured on it, e.g. "darker elongated small region": its tone against the rest of
the image (the pixels outside every region), its shape (elongated when its principal axes differ by at
least `ELONGATED_RATIO`) and its size as a share of the image. A description, not a detector's word;
without the image the phrase is "anomaly". The JSON output has the same shape as the paper profile's.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from iapas.types import Detections

VISUAL_PHRASE = "anomaly"
DESCRIPTION_NOTE = ("region phrases describe what is measured (tone against the rest of the image, shape, size): "
                    "a description, not a detector's word")
TONE_STEP = 12.0  # grey levels (0-255) between a region's mean and the rest's median to call it darker/brighter
ELONGATED_RATIO = 3.0  # long / short principal axis from which a region is elongated
SIZE_CLASSES = ((0.01, "small"), (0.1, "medium"))  # share of the image below which a region is small / medium


def grey_of(rgb: np.ndarray) -> np.ndarray:
    """(H, W) grey levels in 0-255 of an (H, W, 3) or (H, W) image."""
    arr = np.asarray(rgb, dtype=np.float32)
    return arr.mean(axis=-1) if arr.ndim == 3 else arr


def describe_region(inside: np.ndarray, grey: np.ndarray, rest_level: float, image_area: int) -> str:
    """What can be measured about one region, in words: tone, shape, size.

    Args:
        inside: (h, w) bool, the region's pixels within its bounding slice.
        grey: (h, w) grey levels of the same slice.
        rest_level: median grey level of the image outside every region.
        image_area: pixels of the whole image.

    Returns:
        e.g. "darker elongated small region" or "compact medium region" (tone left out when similar).
    """
    words = []
    diff = float(grey[inside].mean()) - rest_level
    if diff <= -TONE_STEP:
        words.append("darker")
    elif diff >= TONE_STEP:
        words.append("brighter")
    ys, xs = np.nonzero(inside)
    if len(ys) >= 3:
        cov = np.cov(np.stack([xs, ys]).astype(np.float64)) + np.eye(2) / 12.0  # a pixel's own extent
        small, large = np.sqrt(np.clip(np.linalg.eigvalsh(cov), 1e-12, None))
        words.append("elongated" if large / small >= ELONGATED_RATIO else "compact")
    share = len(ys) / max(image_area, 1)
    words.append(next((name for limit, name in SIZE_CLASSES if share < limit), "large"))
    return " ".join(words) + " region"


def mask_regions(
    score_map: np.ndarray, mask: np.ndarray, min_area: int = 1, phrase: str = VISUAL_PHRASE,
    rgb: np.ndarray | None = None,
) -> tuple[Detections, np.ndarray]:
    """Boxes (pixel xyxy, exclusive right/bottom) of the 8-connected components of `mask`.

    Each box is scored by the highest score_map value inside its component; components smaller than
    `min_area` pixels are dropped (and removed from the returned mask). Boxes are sorted by score.

    Args:
        score_map: (H, W) float scores.
        mask: (H, W) bool thresholded map.
        phrase: every box's phrase when `rgb` is not given.
        rgb: (H, W, 3) image of the same size: each box's phrase then describes its region
            (`describe_region`).
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
    grey = grey_of(rgb) if rgb is not None and np.asarray(rgb).shape[:2] == mask.shape else None
    rest = float(np.median(grey[labels == 0])) if grey is not None and (labels == 0).any() else 0.0
    phrases: list[str] = []
    for i, sl in enumerate(slices):
        if sl is None or areas[i] < min_area:
            continue
        ys, xs = sl
        xyxy.append((float(xs.start), float(ys.start), float(xs.stop), float(ys.stop)))
        inside = labels[sl] == i + 1  # per-component peak on its slice (ndimage.maximum sorts the whole map)
        scores.append(float(score_map[sl][inside].max()))
        kept[sl] |= inside
        phrases.append(phrase if grey is None else describe_region(inside, grey[sl], rest, mask.size))
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")  # float64, as the map's peaks
    return Detections(xyxy, scores, phrases)[order], kept
