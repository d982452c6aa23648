"""The paper profile: Stage 1 + Stage 2 with tiny random Grounding DINO and SAM, and the Stage 2 flow on
scripted detector/segmenter doubles whose exact results are known."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iapas.config import PipelineConfig
from iapas.errors import SettingsError
from iapas.io.images import LoadedImage
from iapas.pipeline import Pipeline
from iapas.profiles.paper import PaperProfile
from iapas.settings import resolve, thresholds
from iapas.stages.scoring import score_map
from iapas.types import Box, Detections
from fake_segmenter import RectSegmenter

TAG = "magnetic tile"


def _loaded(h: int = 60, w: int = 90, seed: int = 0, name: str = "img.png") -> LoadedImage:
    rgb = np.random.RandomState(seed).randint(0, 255, (h, w, 3), dtype=np.uint8)
    return LoadedImage(path=name, rgb=rgb, original_size=(w, h))


def _config(detector: Path | str, segmenter: Path | str, **kw) -> PipelineConfig:
    base = dict(
        profile="paper", detector=str(detector), segmenter=str(segmenter), tagger="none", object_name=TAG,
        llm="none", device="cpu", box_threshold=0.2, text_threshold=0.2,
    )
    base.update(kw)
    return PipelineConfig(**base)


# ---------------------------------------------------------------- real tiny models


# With the seed-0 tiny Grounding DINO, the object tag "screw" gives a 9 x 6 px object box on image seed 7
# (limit 0.8 x 54 = 43.2 px): the 4.5 x 3 px defect boxes pass the size filter and the larger ones do not,
# so the tests below see kept AND removed boxes. ("magnetic tile" gives a box as small as the defects:
# everything would be removed and the map trivially zero.)
TINY_OBJECT = "screw"


@pytest.fixture(scope="module")
def fitted(tiny_gdino, tiny_sam):
    cfg = _config(tiny_gdino, tiny_sam, object_name=TINY_OBJECT)
    prof = PaperProfile(resolve(cfg))
    ctx = prof.fit([_loaded(seed=s) for s in range(3)])
    return prof, ctx


def test_fit_builds_the_context_and_records_models(fitted, tiny_gdino, tiny_sam):
    prof, ctx = fitted
    assert ctx.profile == "paper" and ctx.object_tag == TINY_OBJECT
    assert ctx.final_prompt == ["defect, abnormal"]  # --llm none: the official prompt ablation's one caption
    assert ctx.thresholds.box_threshold == 0.2 and ctx.thresholds.size_threshold == 0.8
    assert ctx.models["detector"] == {"id": str(tiny_gdino), "revision": "local", "dtype": "float32"}
    assert ctx.models["segmenter"] == {"id": str(tiny_sam), "revision": "local", "dtype": "float32"}
    assert prof._segmenter is None, "Stage 1 does not load SAM"


def test_fit_with_tagging_grounds_the_object_tag_with_the_detector(tiny_gdino, tiny_sam, tmp_path):
    from tiny.stage1_models import build_tiny_clip

    clip = build_tiny_clip(tmp_path / "clip")
    # threshold 0: every query of the random detector passes, so each normal image gives a top box
    cfg = _config(tiny_gdino, tiny_sam, tagger=str(clip), object_name=None, box_threshold=0.0, text_threshold=0.0)
    prof = PaperProfile(resolve(cfg))
    ctx = prof.fit([_loaded(seed=s) for s in range(2)])
    assert prof._detector is not None, "Stage 1 grounded the tags with the paper detector"
    scores = ctx.model_dump(mode="json")["object_tag_scores"]
    assert ctx.tags and scores and ctx.object_tag == max(scores, key=scores.get)
    assert not any("found none of the tags" in w for w in ctx.warnings)
    # official rule: the detector's phrase as it comes, made of the normal images' tag words
    tag_words = {w for t in ctx.tags for w in t.replace("-", " ").split()}
    assert ctx.object_tag and set(ctx.object_tag.split()) <= tag_words
    assert set(ctx.models) >= {"tagger", "detector", "segmenter"}
    assert ctx.models["detector"]["id"] == str(tiny_gdino)


def test_predict_with_tiny_models(fitted):
    prof, ctx = fitted
    image = _loaded(seed=7)
    pred = prof.predict(image, ctx)
    h, w = image.rgb.shape[:2]
    assert pred.profile == "paper" and pred.path == "img.png"
    assert pred.score_map.shape == (h, w) and pred.score_map.dtype == np.float32
    assert np.array_equal(pred.mask, pred.score_map > 0)
    assert pred.image_score == pytest.approx(float(pred.score_map.max()))
    assert isinstance(pred.boxes, Detections) and isinstance(pred.removed_boxes, Detections)
    assert len(pred.boxes) > 0 and len(pred.removed_boxes) > 0, "the size filter keeps some boxes and removes others"
    assert set(pred.boxes.phrases) | set(pred.removed_boxes.phrases) <= set(ctx.final_prompt)
    assert pred.object_box is not None and pred.object_box.phrase == TINY_OBJECT
    # size filter: kept boxes are below the limit, removed ones are not
    limit = 0.8 * pred.object_box.area
    assert (pred.boxes.area < limit).all() and (pred.removed_boxes.area >= limit).all()
    assert set(pred.removed_boxes.removed_by) == {"size_filter"} and set(pred.boxes.removed_by) == {""}
    # each kept box carries its own SAM mask; the map is their raw (unclipped) sum s_i m_i
    assert pred.boxes.masks is not None and pred.boxes.masks.shape == (len(pred.boxes), h, w)
    masks = prof.segmenter.segment(image.rgb, pred.boxes)  # SAM again on the kept boxes, apart from the prediction
    assert np.array_equal(masks, pred.boxes.masks)
    expected = np.zeros((h, w), np.float64)
    for score, mask in zip(pred.boxes.scores, masks):  # s_i m_i summed pixel by pixel
        expected[mask] += float(score)
    np.testing.assert_allclose(pred.score_map, expected.astype(np.float32), rtol=1e-6)
    assert pred.image_score > 1.0, "overlapping masks of the kept boxes sum above 1: not clipped"
    assert pred.removed_boxes.masks is None, "removed boxes are not segmented"
    assert pred.to_json()["profile"] == "paper"


def test_no_filter_keeps_large_boxes(fitted, tiny_gdino, tiny_sam):
    _, ctx = fitted
    prof = PaperProfile(resolve(_config(tiny_gdino, tiny_sam, use_filter=False, object_name=TINY_OBJECT)))
    image = _loaded(seed=7)
    with_filter = PaperProfile(resolve(_config(tiny_gdino, tiny_sam, object_name=TINY_OBJECT))).predict(image, ctx)
    pred = prof.predict(image, ctx)
    assert len(pred.removed_boxes) == 0 and len(with_filter.removed_boxes) > 0
    assert len(pred.boxes) == len(with_filter.boxes) + len(with_filter.removed_boxes)
    # the map is exactly sum s_i m_i of SAM's masks for the kept boxes, segmented again here
    masks = prof.segmenter.segment(image.rgb, pred.boxes)
    assert masks.any() and np.array_equal(masks, pred.boxes.masks)
    assert np.array_equal(pred.score_map, score_map(masks, pred.boxes.scores, image.rgb.shape[:2], clip=False))
    assert {b.xyxy for b in pred.boxes} == {b.xyxy for b in with_filter.boxes} | {b.xyxy for b in with_filter.removed_boxes}


def test_owlv2_detector_in_the_paper_profile(tiny_owlv2, tiny_sam, fitted):
    _, ctx = fitted
    pred = PaperProfile(resolve(_config(tiny_owlv2, tiny_sam, box_threshold=0.0, use_filter=False))).predict(_loaded(seed=2), ctx)
    assert len(pred.boxes) > 0, "threshold 0 and no filter: OWLv2's boxes reach the map"
    assert pred.score_map.shape == (60, 90) and all(b.phrase in ctx.final_prompt for b in pred.boxes)
    assert pred.score_map.max() > 0


def test_pipeline_runs_the_paper_profile(tmp_path, tiny_gdino, tiny_sam):
    normal = tmp_path / "good"
    normal.mkdir()
    for i in range(3):
        Image.fromarray(_loaded(40, 50, seed=i).rgb).save(normal / f"{i}.png")
    pipe = Pipeline(_config(tiny_gdino, tiny_sam, num_normal=2))
    ctx = pipe.fit(normal)
    assert isinstance(pipe.runner, PaperProfile) and len(ctx.normal_images) == 2
    pred = pipe.predict_one(normal / "0.png", ctx)
    assert pred.profile == "paper" and pred.score_map.shape == (40, 50)


# ---------------------------------------------------------------- exact flow with scripted doubles


class ScriptedDetector:
    """DetectorLike double: fixed boxes for the object-tag pass and for the prompt pass, thresholded."""

    model_id = "scripted"
    revision = "test"

    def __init__(self, object_boxes: list[Box], prompt_boxes: list[Box]) -> None:
        self.object_boxes, self.prompt_boxes = object_boxes, prompt_boxes
        self.calls: list[tuple[list[str], float, float]] = []

    def detect(self, rgb, phrases, box_threshold, text_threshold):
        self.calls.append((list(phrases), box_threshold, text_threshold))
        pool = self.object_boxes if phrases == [TAG] else self.prompt_boxes
        return Detections.from_boxes([b for b in pool if b.score > box_threshold])


def _context(cfg: PipelineConfig, **kw):
    from iapas.context import Context

    kw.setdefault("thresholds", thresholds(cfg))  # as Stage 1 stores them: the only source Stage 2 reads
    return Context(profile="paper", config=cfg, object_tag=TAG, final_prompt=["crack", "defect", TAG], **kw)


def test_stage2_flow_exact():
    # image 100 x 50 = 5000 px; object box 60 x 50 = 3000 px -> object area 0.6, limit 0.8 * 0.6 = 0.48 (2400 px)
    object_boxes = [Box((0, 0, 60, 50), TAG, 0.9), Box((0, 0, 100, 50), TAG, 0.5), Box((0, 0, 61, 50), TAG, 0.4)]
    prompt_boxes = [
        Box((10, 10, 20, 20), "crack", 0.6),
        Box((11, 10, 21, 20), "defect", 0.5),  # IoU 90/110 with the crack box: NMS removes it
        Box((15, 15, 25, 25), "defect", 0.7),  # overlaps the crack box by 25 px
        Box((0, 0, 49, 50), "defect", 0.3),  # 2450 px >= 2400: size filter removes it (IoU 0.49 with the tag box)
        Box((0, 0, 100, 50), TAG, 0.95),  # the object itself: not an anomaly
        Box((70, 30, 80, 40), "crack", 0.1),  # below the box threshold
    ]
    det = ScriptedDetector(object_boxes, prompt_boxes)
    cfg = PipelineConfig(profile="paper", tagger="none", object_name=TAG, llm="none", box_threshold=0.2)
    prof = PaperProfile(resolve(cfg), detector=det, segmenter=RectSegmenter())
    ctx = _context(cfg)
    img = LoadedImage(path="x.png", rgb=np.zeros((50, 100, 3), dtype=np.uint8), original_size=(100, 50))
    pred = prof.predict(img, ctx)
    assert det.calls[0] == ([TAG], 0.2, 0.2) and det.calls[1][0] == ["crack", "defect", TAG]
    assert pred.object_box is not None and pred.object_box.xyxy == (0, 0, 60, 50)
    assert list(pred.boxes.phrases) == ["defect", "crack"] and pred.boxes.scores.tolist() == pytest.approx([0.7, 0.6])
    # the object-tag box is kept as an anomaly box (as in the paper) and then falls to the size filter
    assert [(b.xyxy, b.phrase, b.removed_by) for b in pred.removed_boxes] == [
        ((0, 0, 100, 50), TAG, "size_filter"), ((0, 0, 49, 50), "defect", "size_filter")]
    assert pred.score_map[12, 12] == pytest.approx(0.6)
    assert pred.score_map[17, 17] == pytest.approx(1.3)  # 0.6 + 0.7: the raw sum, not clipped
    assert pred.score_map[22, 22] == pytest.approx(0.7)
    assert pred.score_map[35, 75] == 0.0 and pred.image_score == pytest.approx(1.3)
    assert int(pred.mask.sum()) == 100 + 100 - 25
    assert pred.notes == []
    ctx.models["detector"] = {"id": "IDEA-Research/grounding-dino-tiny", "revision": "abc"}
    assert "context was built with detector" in prof.predict(img, ctx).notes[0]


def test_thresholds_come_from_the_context_only():
    det = ScriptedDetector([], [Box((10, 10, 20, 20), "crack", 0.6), Box((30, 10, 40, 20), "defect", 0.4)])
    cfg = PipelineConfig(profile="paper", tagger="none", object_name=TAG, llm="none", kind="texture")
    prof = PaperProfile(resolve(cfg), detector=det, segmenter=RectSegmenter())
    img = LoadedImage(path="x.png", rgb=np.zeros((50, 100, 3), dtype=np.uint8), original_size=(100, 50))
    edited = thresholds(cfg).model_copy(update={"box_threshold": 0.5})  # a reviewer edited the context
    pred = prof.predict(img, _context(cfg, thresholds=edited))
    assert det.calls[-1][1:] == (0.5, 0.1)  # box threshold from the context, text threshold texture preset
    assert [b.phrase for b in pred.boxes] == ["crack"]
    assert "no object box found" in pred.notes[0]  # object pass found nothing: whole image is the object
    with pytest.raises(SettingsError, match="no Stage 2 thresholds"):  # no config fallback: one source
        prof.predict(img, _context(cfg, thresholds=None))


def test_empty_final_prompt_is_a_settings_error():
    cfg = PipelineConfig(profile="paper", tagger="none", object_name=TAG, llm="none")
    prof = PaperProfile(resolve(cfg), detector=ScriptedDetector([], []), segmenter=RectSegmenter())
    from iapas.context import Context

    with pytest.raises(SettingsError, match="empty final prompt"):
        prof.predict(_loaded(), Context(profile="paper", config=cfg))


def test_half_precision_models_give_float32_maps(fitted, tiny_gdino, tiny_sam):
    """The GPU dtype path (inputs cast to the model dtype, outputs back to float32), run in bfloat16 on CPU."""
    _, ctx = fitted
    prof = PaperProfile(resolve(_config(tiny_gdino, tiny_sam, dtype="bfloat16", use_filter=False)))
    assert prof.detector.model.dtype == torch.bfloat16 and prof.segmenter.model.dtype == torch.bfloat16
    pred = prof.predict(_loaded(seed=7), ctx)
    assert len(pred.boxes) > 0 and pred.score_map.dtype == np.float32 and pred.score_map.shape == (60, 90)
    assert all(isinstance(b.score, float) and 0.0 < b.score <= 1.0 for b in pred.boxes)


# ---------------------------------------------------------------- ablations and named options (official test_ablation.py)


def _ablation_run(**kw):
    """Stage 2 on the scripted image: object box 60 x 50; an object-tag box of the whole object (3000 px,
    kept by the filter only when it is off) and a small crack."""
    object_boxes = [Box((0, 0, 60, 50), TAG, 0.9)]
    prompt_boxes = [Box((0, 0, 60, 50), TAG, 0.8), Box((70, 10, 80, 20), "crack", 0.6)]
    det = ScriptedDetector(object_boxes, prompt_boxes)
    cfg = PipelineConfig(profile="paper", tagger="none", object_name=TAG, llm="none", box_threshold=0.2, **kw)
    img = LoadedImage(path="x.png", rgb=np.zeros((50, 100, 3), dtype=np.uint8), original_size=(100, 50))
    return det, PaperProfile(resolve(cfg), detector=det, segmenter=RectSegmenter()).predict(img, _context(cfg))


def test_object_tag_boxes_are_kept_unless_the_named_option_drops_them():
    _, kept = _ablation_run(use_filter=False)
    assert [b.phrase for b in kept.boxes] == [TAG, "crack"] and kept.score_map[25, 30] == pytest.approx(0.8)
    _, dropped = _ablation_run(use_filter=False, drop_object_boxes=True)
    assert [b.phrase for b in dropped.boxes] == ["crack"] and dropped.score_map[25, 30] == 0.0


def test_filter_on_removes_the_object_sized_box_and_no_filter_keeps_it():
    _, on = _ablation_run()
    assert [b.phrase for b in on.boxes] == ["crack"] and [b.phrase for b in on.removed_boxes] == [TAG]
    _, off = _ablation_run(use_filter=False)
    assert len(off.removed_boxes) == 0 and off.object_box is not None  # the object box is still found, unused


def test_baseline_runs_no_object_pass_and_no_size_filter():
    det, pred = _ablation_run(baseline=True)
    assert all(call[0] != [TAG] for call in det.calls), "no object-tag pass in the official 'base'"
    assert pred.object_box is None and len(pred.removed_boxes) == 0
    assert [b.phrase for b in pred.boxes] == [TAG, "crack"]
