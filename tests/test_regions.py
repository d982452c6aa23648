"""Offline regions are described by what can be measured on them: tone, shape, size."""
from __future__ import annotations

import numpy as np

from iapas.stages.regions import mask_regions


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A mid-grey 200x200 part with a dark thin scratch and a bright round spot; their score map."""
    rgb = np.full((200, 200, 3), 128, dtype=np.uint8)
    score = np.zeros((200, 200), dtype=np.float32)
    rgb[40:43, 20:120] = 30  # scratch: 3 x 100 px (0.75% of the image), dark
    score[40:43, 20:120] = 0.9
    yy, xx = np.mgrid[:200, :200]
    spot = (yy - 150) ** 2 + (xx - 150) ** 2 <= 30 ** 2  # disc of radius 30 (7% of the image), bright
    rgb[spot] = 230
    score[spot] = 0.7
    return rgb, score


def test_each_region_is_described_by_tone_shape_and_size() -> None:
    rgb, score = _scene()
    boxes, _ = mask_regions(score, score >= 0.5, rgb=rgb)
    assert list(boxes.phrases) == ["darker elongated small region", "brighter compact medium region"]


def test_without_the_image_the_phrase_stays_generic() -> None:
    _, score = _scene()
    boxes, _ = mask_regions(score, score >= 0.5)
    assert list(boxes.phrases) == ["anomaly", "anomaly"]
