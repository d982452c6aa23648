"""Step 1-2 / 2-2: a defect cannot be (nearly) as large as the object itself.

As in the official code, each test image's object box is the highest-scoring box the detector
returns for the object tag alone (after NMS); object_area is that box's area as a fraction of the
image. Anomaly boxes are kept only if their own area fraction is strictly below
size_threshold x object_area (paper: 0.8). When no object box is found, object_area = 1.0 (the whole
image), so only boxes covering at least size_threshold of the image are dropped; textures, where the
"object" is the whole frame, behave the same way. Boxes labelled with the object tag stay in the anomaly
list, as in the paper and the official code (the filter removes the large ones); `drop_object_boxes` is
iapas's named option (`--drop-object-boxes`) that removes them all. Areas are those of the detector's
boxes before clipping to the image, as in the official code (which clips only right before SAM).
"""
from __future__ import annotations

import numpy as np

from iapas.phrases import normalize_phrase
from iapas.types import Box, Detections

REMOVED_BY = "size_filter"


def is_object(detections: Detections, object_tag: str | None) -> np.ndarray:
    """(N,) bool: the detections whose phrase is the object tag (all False without a tag)."""
    if not object_tag:
        return np.zeros(len(detections), dtype=bool)
    tag = normalize_phrase(object_tag)
    return np.array([normalize_phrase(str(p)) == tag for p in detections.phrases], dtype=bool)


def find_object_box(detections: Detections, object_tag: str | None) -> Box | None:
    """Highest-scoring box whose phrase is the object tag (the first on ties; None when there is none or
    no tag): the single box that bounds defect sizes."""
    mine = detections[is_object(detections, object_tag)]
    return mine.box(int(np.argmax(mine.scores))) if len(mine) else None


def object_area_fraction(object_box: Box | None, width: int, height: int) -> float:
    """Object box area / image area, of the box as the detector gave it (not clipped: the official
    `object_size`, which can exceed 1 for a box reaching out of the image); 1.0 without an object box."""
    if object_box is None:
        return 1.0
    return object_box.area / float(width * height)


def drop_object_boxes(detections: Detections, object_tag: str | None) -> Detections:
    """The detections that are not the object itself (phrase differs from the object tag)."""
    return detections[~is_object(detections, object_tag)]


def size_filter(
    detections: Detections, object_area: float, width: int, height: int, size_threshold: float = 0.8
) -> tuple[Detections, Detections]:
    """Split by Step 2-2's rule: kept when box area / (width*height) < size_threshold * object_area.

    Args:
        detections: the N anomaly boxes after NMS.
        object_area: the object box's area as a fraction of the image (1.0 without an object box).
    Returns:
        (kept, removed), order kept; removed is marked removed_by="size_filter" so outputs can show what
        Step 2-2 dropped.
    """
    keep = detections.area / float(width * height) < size_threshold * object_area
    return detections[keep], detections[~keep].removed(REMOVED_BY)
