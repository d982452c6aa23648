"""Two scales for textures: the deep (stride 32) map and a fine (stride 8/16) map, each calibrated on the
normal images, combined by their maximum.

Why: deep features see blobs, stains and uneven surface but lose what lives in a few pixels (a fine weave
whose high frequencies are blurred away, a 1-2 px crack); fine features see those but are noisy on large,
diffuse defects. Each map is brought to the same scale by its own leave-one-out calibration (0 at its floor,
1 at its threshold), so the maximum flags a pixel that either scale finds abnormal by its own standard,
and neither scale's raw distances dominate.
"""
from __future__ import annotations

import numpy as np

from iapas.settings import ReferenceSettings


def fine_settings(settings: ReferenceSettings) -> ReferenceSettings:
    """The settings of the fine-scale bank: the fine stages, each L2-normalised, no refinement, no positions,
    the main bank's views coreset to `fine_max_bank` rows: small, so cheap per image."""
    return settings.model_copy(update={"stages": settings.fine_stages, "normalize": "l2", "fine_stages": (),
                                       "segment_levels": (), "position": "off", "max_bank": settings.fine_max_bank})


def excess(raw: np.ndarray, floor: float, threshold: float) -> np.ndarray:
    """A raw map on its calibration's scale: 0 at or below the floor, 1 at the threshold.

    Args:
        raw: (H, W) raw map.
        floor, threshold: the calibration's two anchors.
    Returns:
        (H, W) float32.
    """
    return (np.maximum(raw - floor, 0.0) / max(threshold - floor, 1e-12)).astype(np.float32)


SCALE_COMBINES = ("sum", "max")


def combine_scales(deep: np.ndarray, fine: np.ndarray, deep_cal: tuple[float, float],
                   fine_cal: tuple[float, float], how: str = "sum") -> np.ndarray:
    """The two maps, each on its own calibrated scale, summed or their maximum.

    Args:
        deep, fine: (H, W) raw maps.
        deep_cal, fine_cal: (floor, threshold) of each map's calibration.
        how: "sum" or "max".
    Returns:
        (H, W) float32 map.
    """
    a, b = excess(deep, *deep_cal), excess(fine, *fine_cal)
    if how == "sum":
        return a + b
    if how == "max":
        return np.maximum(a, b)
    raise ValueError(f"unknown scale combine {how!r}; allowed: {', '.join(SCALE_COMBINES)}")
