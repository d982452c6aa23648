"""Step 1-2 / 2-2: object box, object area and the size filter, on hand-made boxes with exact values."""
from __future__ import annotations

import pytest

from iapas.stages.size_filter import (
    REMOVED_BY,
    drop_object_boxes,
    find_object_box,
    normalize_phrase,
    object_area_fraction,
    size_filter,
)
from iapas.types import Box, Detections

W, H = 100, 50  # image area 5000


def test_object_box_is_the_highest_scoring_box_of_the_object_tag():
    boxes = Detections.from_boxes([
        Box((0, 0, 100, 50), "magnetic tile", 0.4),
        Box((10, 10, 60, 40), "Magnetic Tile.", 0.7),
        Box((0, 0, 10, 10), "crack", 0.99),
    ])
    obj = find_object_box(boxes, "magnetic tile")
    assert isinstance(obj, Box) and obj == boxes.box(1) and obj.xyxy == (10, 10, 60, 40)
    assert find_object_box(boxes, "screw") is None
    assert find_object_box(boxes, None) is None
    assert normalize_phrase(" Magnetic  Tile. ") == "magnetic tile"


def test_object_area_is_the_unclipped_fraction_of_the_image_and_one_without_box():
    assert object_area_fraction(Box((10, 10, 60, 40), "t", 1.0), W, H) == pytest.approx(1500 / 5000)
    # the official object_size: the box as detected, even where it reaches out of the image (70 x 80 px)
    assert object_area_fraction(Box((-20, 0, 50, 80), "t", 1.0), W, H) == pytest.approx(5600 / 5000)
    assert object_area_fraction(None, W, H) == 1.0


def test_size_filter_below_at_and_above_the_limit():
    # object area 0.5 of the image, threshold 0.8 -> limit 0.4 of the image = 2000 px
    below = Box((0, 0, 40, 49), "crack", 0.9)  # 1960 px: kept
    at = Box((0, 0, 40, 50), "scratch", 0.8)  # 2000 px: exactly the limit: removed (strictly below is kept)
    above = Box((0, 0, 50, 50), "stain", 0.7)  # 2500 px: removed
    found = Detections.from_boxes([below, at, above])
    kept, removed = size_filter(found, 0.5, W, H, 0.8)
    assert list(kept.phrases) == ["crack"] and kept.box(0).xyxy == below.xyxy and list(kept.removed_by) == [""]
    assert list(removed.phrases) == ["scratch", "stain"]
    assert all(b.removed_by == REMOVED_BY for b in removed)
    assert list(found.removed_by) == ["", "", ""]  # inputs are not modified
    assert removed.box(0).xyxy == at.xyxy and removed.scores[0] == found.scores[1]


def test_size_filter_without_object_box_uses_the_whole_image():
    big = Box((0, 0, 90, 45), "defect", 0.5)  # 4050 / 5000 = 0.81 >= 0.8 x 1.0
    small = Box((0, 0, 80, 49), "defect", 0.5)  # 3920 / 5000 = 0.784 < 0.8
    kept, removed = size_filter(Detections.from_boxes([big, small]), object_area_fraction(None, W, H), W, H, 0.8)
    assert [b.xyxy for b in kept] == [small.xyxy] and [b.xyxy for b in removed] == [big.xyxy]


def test_object_tag_boxes_are_not_anomalies():
    boxes = Detections.from_boxes(
        [Box((0, 0, 100, 50), "magnetic tile", 0.9), Box((1, 1, 5, 5), "crack", 0.3), Box((1, 1, 5, 5), "tile", 0.3)])
    assert [b.phrase for b in drop_object_boxes(boxes, "Magnetic tile")] == ["crack", "tile"]
    assert list(drop_object_boxes(boxes, None)) == list(boxes)


def test_size_filter_empty_input():
    kept, removed = size_filter(Detections.empty(), 0.3, W, H)
    assert len(kept) == 0 and len(removed) == 0
