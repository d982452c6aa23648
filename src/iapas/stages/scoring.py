"""Step 2-4: pixel score map = sum_i s_i * m_i over the kept boxes' SAM masks, and the image score.

The paper profile keeps the raw sum (`clip=False`), as the paper and the official code do: where masks of
different boxes overlap it exceeds 1, and `NAME.npy` stores it so; displays clip it to [0, 1]. (The
official code then min-max normalises each map on its own; in iapas that belongs to the `--protocol
paper` evaluation, not to the prediction.) The image score is the map's maximum: 0 when nothing was found.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iapas.types import Detections


def score_map(masks: np.ndarray, scores: Sequence[float], shape: tuple[int, int], clip: bool = True) -> np.ndarray:
    """Sum of N masks weighted by their N box scores.

    Args:
        masks: (N, H, W) bool masks.
        scores: the N box scores.
        shape: (H, W) of the map (used when N = 0).
        clip: clip the sum to [0, 1].
    Returns:
        (H, W) float32 score map.
    """
    masks = np.asarray(masks, dtype=bool)
    weights = np.asarray(scores, dtype=np.float32).reshape(-1)
    if masks.shape[0] != weights.size:
        raise ValueError(f"{masks.shape[0]} masks but {weights.size} scores")
    if weights.size == 0:
        return np.zeros(shape, dtype=np.float32)
    if masks.shape[1:] != tuple(shape):
        raise ValueError(f"mask size {masks.shape[1:]} differs from image size {tuple(shape)}")
    summed = np.tensordot(weights, masks.astype(np.float32), axes=1)
    return (np.clip(summed, 0.0, 1.0) if clip else summed).astype(np.float32)


def detections_map(detections: Detections, shape: tuple[int, int], clip: bool = True) -> np.ndarray:
    """Step 2-4 from the detections' own masks: (H, W) float32 sum_i s_i * m_i.

    Args:
        detections: N boxes with (N, H, W) masks (Step 2-3); N = 0 gives an all-zero map.
        shape: (H, W) of the image.
        clip: clip to [0, 1] (the fused profile) or keep the raw sum (the paper profile).
    Raises:
        ValueError: boxes without masks (segment them first) or masks of another size.
    """
    masks = detections.masks
    if masks is None:
        if len(detections):
            raise ValueError(f"{len(detections)} detections have no masks: run the segmenter first")
        masks = np.zeros((0, *shape), dtype=bool)
    return score_map(masks, detections.scores, shape, clip=clip)


def image_score(score_map_: np.ndarray) -> float:
    """Max of the map: the strongest region's confidence; 0.0 for an empty map.

    Args:
        score_map_: (H, W) score map.
    """
    return float(score_map_.max()) if score_map_.size else 0.0


def binary_mask(score_map_: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Pixels whose score is above `threshold` (default: covered by any kept region).

    Args:
        score_map_: (H, W) score map.
        threshold: the score a defect pixel exceeds.
    Returns:
        (H, W) bool mask.
    """
    return np.asarray(score_map_) > threshold
