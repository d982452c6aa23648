"""Step 1-2 / 2-2: a defect cannot be (nearly) as large as the object itself.

As in the official code, each test image's object box is the highest-scoring box the detector
returns for the object tag alone (after NMS); object_area is that box's area as a fraction of the
image. Anomaly boxes are kept only if their own area fraction is strictly below
size_threshold x object_area (paper: 0.8). When no object box is found, object_area = 1.0 (the whole
image), so only boxes covering at least size_threshold of the image are dropped; textures, where the
"object" is the whole frame, behave the same way. Boxes labelled with the object tag stay in the anomaly
list, as in the paper and the official code (the filter removes the large ones); `drop_object_boxes` is
iapas's named option (`--drop-object-boxes`) that removes them all.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from iapas.stages.phrases import normalize_phrase
from iapas.types import Box

REMOVED_BY = "size_filter"


def find_object_box(boxes: Sequence[Box], object_tag: str | None) -> Box | None:
    """Highest-scoring box whose phrase is the object tag (None when there is none or no tag)."""
    if not object_tag:
        return None
    tag = normalize_phrase(object_tag)
    mine = [b for b in boxes if normalize_phrase(b.phrase) == tag]
    return max(mine, key=lambda b: b.score) if mine else None


def object_area_fraction(object_box: Box | None, width: int, height: int) -> float:
    """Object box area / image area, clipped to the image; 1.0 when there is no object box."""
    if object_box is None:
        return 1.0
    x0, y0, x1, y1 = object_box.xyxy
    w = max(0.0, min(x1, width) - max(x0, 0.0))
    h = max(0.0, min(y1, height) - max(y0, 0.0))
    return (w * h) / float(width * height)


def drop_object_boxes(boxes: Sequence[Box], object_tag: str | None) -> list[Box]:
    """The boxes that are not the object itself (phrase differs from the object tag)."""
    if not object_tag:
        return list(boxes)
    tag = normalize_phrase(object_tag)
    return [b for b in boxes if normalize_phrase(b.phrase) != tag]


def size_filter(
    boxes: Sequence[Box], object_area: float, width: int, height: int, size_threshold: float = 0.8
) -> tuple[list[Box], list[Box]]:
    """(kept, removed): kept when area / (width*height) < size_threshold * object_area.

    Removed boxes are copies marked removed_by="size_filter" so outputs can show what Step 2-2 dropped.
    """
    limit = size_threshold * object_area
    image_area = float(width * height)
    kept: list[Box] = []
    removed: list[Box] = []
    for b in boxes:
        if b.area / image_area < limit:
            kept.append(b)
        else:
            removed.append(replace(b, removed_by=REMOVED_BY))
    return kept, removed
