"""Step 2-3: each kept box gets its own mask from the segmenter (SAM: `iapas.models.segmenter`).

The masks stay attached to the Detections, one per box, so scoring and the fused profile use each
box's own mask rather than their union.
"""
from __future__ import annotations

import numpy as np

from iapas.detections import Detections
from iapas.types import SegmenterLike


def segment_detections(segmenter: SegmenterLike, rgb: np.ndarray, detections: Detections) -> Detections:
    """The detections with one mask per box from `segmenter.segment(rgb, detections)`.

    Args:
        segmenter: a box-prompted segmenter (`iapas.models.segmenter.SamSegmenter`).
        rgb: (H, W, 3) uint8 image the boxes are in.
        detections: N boxes in pixel xyxy of `rgb`.
    Returns:
        The same N detections with (N, H, W) bool masks.
    """
    return detections.with_masks(segmenter.segment(rgb, detections))
