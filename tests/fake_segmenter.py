"""A segmenter double shared by the profile tests: each mask is exactly its (integer) box, so a test
knows every mask without running SAM."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class RectSegmenter:
    """Segmenter double: mask i is box i's integer rectangle (N, H, W) bool."""

    model_id = "rect"

    def segment(self, rgb: np.ndarray, boxes: Iterable) -> np.ndarray:
        boxes = list(boxes)
        h, w = rgb.shape[:2]
        out = np.zeros((len(boxes), h, w), dtype=bool)
        for i, b in enumerate(boxes):
            x0, y0, x1, y1 = (int(v) for v in b.xyxy)
            out[i, y0:y1, x0:x1] = True
        return out
