"""Bring score maps and ground truth to the fixed evaluation resolution (the field's square resize).

Maps are resized bilinearly (they are continuous), masks with nearest neighbour (they stay binary).
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def resize_map(score_map: np.ndarray, size: int) -> np.ndarray:
    """HxW float map -> size x size float32, bilinear."""
    m = np.asarray(score_map, dtype=np.float32)
    if m.shape == (size, size):
        return m.copy()
    return np.asarray(Image.fromarray(m, mode="F").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """HxW bool mask -> size x size bool, nearest neighbour."""
    g = np.asarray(mask, dtype=bool)
    if g.shape == (size, size):
        return g.copy()
    im = Image.fromarray(g.astype(np.uint8) * 255, mode="L").resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(im) > 127
