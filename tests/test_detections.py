"""Detections (issue 13): boxes as parallel arrays with per-box masks, and the per-image JSON it writes,
compared with the JSON written before Detections existed (list[Box])."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.io.images import LoadedImage
from iapas.outputs.writer import write_prediction
from iapas.profiles.paper import PaperProfile
from iapas.settings import resolve, thresholds
from iapas.stages.scoring import detections_map
from iapas.types import Box, Detections, Prediction
from fake_segmenter import RectSegmenter


def _three(masks: bool = True) -> Detections:
    m = np.zeros((3, 8, 10), dtype=bool)
    m[0, 0:2, 0:2] = m[1, 4:8, 5:10] = m[2, :, :] = True
    return Detections([(0, 0, 2, 2), (5, 4, 10, 8), (-1, 3, 1, 2)], [0.5, 0.9, 0.25], ["crack", "hole", "flat"],
                      masks=m if masks else None)


def test_arrays_have_fixed_dtypes_and_shapes() -> None:
    d = _three()
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (3, 4)
    assert d.scores.dtype == np.float32 and d.scores.shape == (3,)
    assert d.phrases.dtype == object and list(d.phrases) == ["crack", "hole", "flat"]
    assert d.masks is not None and d.masks.dtype == bool and d.masks.shape == (3, 8, 10)
    assert list(d.removed_by) == ["", "", ""] and len(d) == 3 and not d.is_empty()
    np.testing.assert_array_equal(d.area, [4.0, 20.0, 0.0])  # degenerate box: area 0


def test_selection_by_mask_index_slice_and_int_keeps_every_field_aligned() -> None:
    d = _three()
    keep = d.scores > 0.4
    sel = d[keep]
    assert list(sel.phrases) == ["crack", "hole"] and sel.masks is not None and sel.masks.shape == (2, 8, 10)
    np.testing.assert_array_equal(sel.masks[1], d.masks[1])
    by_index = d[np.array([2, 0])]
    assert list(by_index.phrases) == ["flat", "crack"] and by_index.scores.tolist() == [0.25, 0.5]
    assert list(d[1:].phrases) == ["hole", "flat"]
    one = d[1]
    assert isinstance(one, Detections) and len(one) == 1 and one.box(0).phrase == "hole"
    assert len(d[np.zeros(3, bool)]) == 0 and d[np.zeros(3, bool)].masks.shape == (0, 8, 10)
    assert list(d[d.argsort()].phrases) == ["hole", "crack", "flat"]


def test_iteration_gives_single_box_views_and_to_json_the_box_dicts() -> None:
    d = _three(masks=False).removed("size_filter")
    boxes = list(d)
    assert all(isinstance(b, Box) for b in boxes) and boxes[1].xyxy == (5.0, 4.0, 10.0, 8.0)
    assert d.to_json()[0] == {"xyxy": [0.0, 0.0, 2.0, 2.0], "phrase": "crack", "score": 0.5, "removed_by": "size_filter"}
    assert "removed_by" not in _three().to_json()[0]
    back = Detections.from_json(d.to_json())
    assert back.to_json() == d.to_json() and back.masks is None
    scaled = Detections.from_json(d.to_json(), (2.0, 0.5))
    assert scaled.box(1).xyxy == (10.0, 2.0, 20.0, 4.0)


def test_empty_merge_and_new_scores() -> None:
    e = Detections.empty()
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.to_json() == [] and list(e) == []
    d = _three()
    merged = Detections.merge([d[:1], e, d[1:]])
    assert list(merged.phrases) == list(d.phrases) and merged.masks is not None
    assert Detections.merge([d, _three(masks=False)]).masks is None, "masks only when every part has them"
    assert len(Detections.merge([])) == 0
    rescored = d.with_scores([0.1, 0.2, 0.3])
    assert rescored.scores.tolist() == pytest.approx([0.1, 0.2, 0.3]) and rescored.masks is d.masks
    assert d.scores.tolist() == pytest.approx([0.5, 0.9, 0.25]), "the original is not modified"


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(xyxy=[(0, 0, 1, 1)], scores=[0.1, 0.2], phrases=["a"]), "2 scores"),
        (dict(xyxy=[(0, 0, 1, 1)], scores=[0.1], phrases=["a", "b"]), "2 phrases"),
        (dict(xyxy=[(0, 0, 1, 1)], scores=[0.1], phrases=["a"], masks=np.zeros((2, 4, 4), bool)), "masks of shape"),
        (dict(xyxy=[(0, 0, 1, 1)], scores=[0.1], phrases=["a"], masks=np.zeros((4, 4), bool)), "masks of shape"),
        (dict(xyxy=[(0, 0, 1, 1)], scores=[0.1], phrases=["a"], removed_by=["x", "y"]), "removed_by"),
    ],
)
def test_misaligned_fields_are_refused(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Detections(**kwargs)


def test_score_map_from_the_per_box_masks() -> None:
    d = _three()
    smap = detections_map(d, (8, 10), clip=False)
    assert smap[0, 0] == pytest.approx(0.75) and smap[5, 6] == pytest.approx(1.15) and smap[3, 3] == pytest.approx(0.25)
    assert detections_map(d, (8, 10), clip=True).max() == 1.0
    assert not detections_map(Detections.empty(), (8, 10)).any()
    with pytest.raises(ValueError, match="no masks"):
        detections_map(_three(masks=False), (8, 10))


def test_prediction_accepts_hand_made_box_lists() -> None:
    pred = Prediction(path="p", score_map=np.zeros((4, 4), np.float32), mask=np.zeros((4, 4), bool),
                      boxes=[Box((0, 0, 2, 2), "crack", 0.5)], image_score=0.0, profile="paper",
                      removed_boxes=[Box((0, 0, 4, 4), "stain", 0.25, "size_filter")])
    assert isinstance(pred.boxes, Detections) and isinstance(pred.removed_boxes, Detections)
    assert pred.to_json()["removed_boxes"][0]["removed_by"] == "size_filter"


# ---------------------------------------------------------------- per-image JSON, before and after

TAG = "magnetic tile"


def _f32_box(xyxy: tuple[float, ...], phrase: str, score: float) -> Box:
    """A box with the float32 values a real detector returns (torch tensors .tolist())."""
    return Box(tuple(float(np.float32(v)) for v in xyxy), phrase, float(np.float32(score)))  # type: ignore[arg-type]


OBJECT_BOXES = [_f32_box((2.5, 1.25, 70.75, 48.5), TAG, 0.91234567), _f32_box((0, 0, 100, 50), TAG, 0.4)]
PROMPT_BOXES = [
    _f32_box((10.126, 10.5, 20.333, 20.9), "crack", 0.61234567), _f32_box((11, 10, 21, 20), "defect", 0.5),
    _f32_box((15.5, 15.25, 25.75, 25.5), "defect", 0.7312345), _f32_box((0, 0, 60.5, 50), "defect", 0.3333333),
    _f32_box((0, 0, 100, 50), TAG, 0.95), _f32_box((70, 30, 80, 40), "crack", 0.1),
    _f32_box((80.2, 5.1, 90.9, 12.7), "hole", 0.2512),
]


class _Detector:
    model_id, revision = "scripted", "test"

    def detect(self, rgb, phrases, box_threshold, text_threshold):
        pool = OBJECT_BOXES if phrases == [TAG] else PROMPT_BOXES
        return Detections.from_boxes([b for b in pool if b.score > box_threshold])


# Written by iapas before issue 13 (list[Box] carrier, commit b5624ae) for exactly this scenario.
BEFORE = {
    "path": "x.png", "profile": "paper", "image_score": 1.34358, "size": [100, 50],
    "boxes": [
        {"xyxy": [15.5, 15.25, 25.75, 25.5], "phrase": "defect", "score": 0.731234},
        {"xyxy": [10.13, 10.5, 20.33, 20.9], "phrase": "crack", "score": 0.612346},
        {"xyxy": [80.2, 5.1, 90.9, 12.7], "phrase": "hole", "score": 0.2512},
    ],
    "phrases": ["defect", "crack", "hole"],
    "scores": [0.731234, 0.612346, 0.2512],
    "removed_boxes": [{"xyxy": [0.0, 0.0, 100.0, 50.0], "phrase": TAG, "score": 0.95, "removed_by": "size_filter"}],
    "object_box": {"xyxy": [2.5, 1.25, 70.75, 48.5], "phrase": TAG, "score": 0.912346},
    "notes": [], "name": "x",
    "files": {"score_map": "x.npy", "mask": "x_mask.png", "overlay": "x_overlay.png",
              "thumb": "report_assets/thumbs/x.jpg", "json": "x.json"},
    "settings_digest": "digest", "overlay_image_box": [0, 24, 384, 192],
}


def test_per_image_json_is_the_same_as_before_detections(tmp_path: Path) -> None:
    cfg = PipelineConfig(profile="paper", tagger="none", object_name=TAG, llm="none", box_threshold=0.2)
    ctx = Context(profile="paper", config=cfg, object_tag=TAG, final_prompt=["crack", "defect", "hole", TAG],
                  thresholds=thresholds(cfg))
    img = LoadedImage(path="x.png", rgb=np.zeros((50, 100, 3), dtype=np.uint8), original_size=(100, 50))
    pred = PaperProfile(resolve(cfg), detector=_Detector(), segmenter=RectSegmenter()).predict(img, ctx)
    write_prediction(tmp_path, "x", img.rgb, pred, "digest", maps="npy")
    assert json.loads((tmp_path / "x.json").read_text()) == BEFORE
    assert pred.boxes.masks is not None and pred.boxes.masks.shape == (3, 50, 100)
