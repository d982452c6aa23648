"""Bring score maps and ground truth to the fixed evaluation resolution (the field's square resize).

standard protocol: maps bilinear (Pillow), masks nearest neighbour.
paper protocol: OpenCV's INTER_CUBIC for maps and INTER_NEAREST for masks, as the official
`process_specify_resolution` does (OpenCV's cubic does not antialias, unlike Pillow's).
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

RESAMPLERS = ("bilinear", "cubic")


def resize_map(score_map: np.ndarray, size: int, method: str = "bilinear", dtype: type = np.float32) -> np.ndarray:
    """HxW float map -> size x size map (method: bilinear, or cubic as the official code).

    `dtype=np.float64` (cubic only) resizes in double precision, as the official code does with its
    float64 maps; the default float32 is what the standard protocol stores.
    """
    m = np.asarray(score_map, dtype=dtype)
    if m.shape == (size, size):
        return m.copy()
    if method == "cubic":
        return np.ascontiguousarray(cv2.resize(m, (size, size), interpolation=cv2.INTER_CUBIC), dtype=dtype)
    if dtype is not np.float32:
        raise ValueError("only cubic resampling works in float64")
    if method != "bilinear":
        raise ValueError(f"unknown resampling {method!r}; allowed: {', '.join(RESAMPLERS)}")
    return np.asarray(Image.fromarray(m, mode="F").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def resize_mask(mask: np.ndarray, size: int, method: str = "bilinear") -> np.ndarray:
    """HxW bool mask -> size x size bool, nearest neighbour (OpenCV's under the paper protocol)."""
    g = np.asarray(mask, dtype=bool)
    if g.shape == (size, size):
        return g.copy()
    if method == "cubic":
        return cv2.resize(g.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
    im = Image.fromarray(g.astype(np.uint8) * 255, mode="L").resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(im) > 127
