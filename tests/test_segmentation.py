"""Step 2-3: box-prompted masks from tiny random SAM / SAM-HQ checkpoints loaded from a folder."""
from __future__ import annotations

import numpy as np
import pytest

from iapas.errors import ModelLoadError
from iapas.models.segmenter import SamSegmenter, load_segmenter
from iapas.types import Box, Detections

BOXES = Detections.from_boxes(
    [Box((5, 5, 30, 40), "crack", 0.9), Box((40, 10, 75, 45), "hole", 0.5), Box((0, 0, 80, 50), "stain", 0.3)])


def _image(h: int = 50, w: int = 80) -> np.ndarray:
    return np.random.RandomState(3).randint(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("which", ["tiny_sam", "tiny_sam_hq"])
def test_one_mask_per_box_at_image_size(which, request):
    seg = load_segmenter(str(request.getfixturevalue(which)), "cpu")
    assert isinstance(seg, SamSegmenter) and seg.is_hq == (which == "tiny_sam_hq")
    for h, w in ((50, 80), (90, 40)):
        masks = seg.segment(_image(h, w), BOXES)
        assert masks.shape == (3, h, w) and masks.dtype == bool


def test_image_embedding_once_and_batch_equals_one_by_one(tiny_sam, monkeypatch):
    seg = load_segmenter(str(tiny_sam), "cpu")
    rgb = _image()
    calls = []
    real = seg.model.get_image_embeddings

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(seg.model, "get_image_embeddings", counting)
    batch = seg.segment(rgb, BOXES)
    assert len(calls) == 1  # one embedding for all three boxes
    singles = np.stack([seg.segment(rgb, BOXES[i])[0] for i in range(len(BOXES))])
    assert np.array_equal(batch, singles)
    assert batch.any(), "the random decoder still marks some pixels"
    assert not np.array_equal(batch[0], batch[1]), "different boxes give different masks"


def test_boxes_as_array_match_boxes_as_objects(tiny_sam):
    seg = load_segmenter(str(tiny_sam), "cpu")
    rgb = _image()
    assert np.array_equal(seg.segment(rgb, np.array([b.xyxy for b in BOXES])), seg.segment(rgb, BOXES))
    assert seg.segment(rgb, Detections.empty()).shape == (0, 50, 80)


def test_no_boxes_no_model_call(tiny_sam, monkeypatch):
    seg = load_segmenter(str(tiny_sam), "cpu")
    monkeypatch.setattr(seg.model, "get_image_embeddings", lambda *a, **k: pytest.fail("model called"))
    out = seg.segment(_image(20, 30), [])
    assert out.shape == (0, 20, 30) and out.dtype == bool


def test_detector_checkpoint_is_not_a_segmenter(tiny_gdino):
    with pytest.raises(ModelLoadError) as err:
        load_segmenter(str(tiny_gdino), "cpu")
    assert "segmenter" in str(err.value)
