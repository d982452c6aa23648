"""The fused profile: paper regions re-scored by the visual prior. Exact flow on scripted doubles, then
the real path with tiny random Grounding DINO and SAM (built from configs, loaded from disk)."""
from __future__ import annotations


import numpy as np
import pytest


from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.data.synthetic import load_texture
from iapas.io.images import LoadedImage
from iapas.pipeline import Pipeline
from iapas.profiles.fused import FusedProfile, box_mask
from iapas.profiles.paper import PaperProfile
from iapas.settings import resolve
from iapas.types import Box, Detections
from fake_segmenter import RectSegmenter

TAG = "surface"
S = 96


def _img(gray: np.ndarray, name: str = "x.png") -> LoadedImage:
    rgb = np.repeat(gray[..., None], 3, axis=2)
    return LoadedImage(path=name, rgb=rgb, original_size=(rgb.shape[1], rgb.shape[0]))


def _normals() -> list[LoadedImage]:
    tex = load_texture("brick")
    return [_img(tex[y : y + S, x : x + S].copy(), f"n{i}.png") for i, (y, x) in enumerate([(0, 0), (0, 200), (200, 0), (300, 300), (100, 400)])]


class TwoBoxDetector:
    """Finds the same two regions on every image: one on a drawn hole, one on plain texture."""

    model_id, revision = "scripted", "test"

    def detect(self, rgb, phrases, box_threshold, text_threshold):
        if phrases == [TAG]:
            return Detections.empty()
        return Detections.from_boxes([Box((30, 30, 50, 50), "hole", 0.8), Box((60, 60, 80, 80), "defect", 0.8)])


class DiskSegmenter:
    """Each mask is a disk of radius 8 around (40, 40), wherever its box is: a mask that is not the box."""

    model_id = "disk"

    def segment(self, rgb, boxes):
        yy, xx = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
        disk = (yy - 40) ** 2 + (xx - 40) ** 2 <= 64
        return np.repeat(disk[None], len(boxes), axis=0)


class OneBoxDetector:
    """One box on plain texture, far from the hole."""

    model_id, revision = "scripted-one", "test"

    def detect(self, rgb, phrases, box_threshold, text_threshold):
        if phrases == [TAG]:
            return Detections.empty()
        return Detections.from_boxes([Box((60, 60, 80, 80), "defect", 0.8)])


def _hole_image() -> LoadedImage:
    test = load_texture("brick")[400:400 + S, 100:100 + S].copy()
    yy, xx = np.mgrid[:S, :S]
    test[(yy - 40) ** 2 + (xx - 40) ** 2 <= 64] = 0  # a dark hole inside the first box only
    return _img(test)


def _config(**kw) -> PipelineConfig:
    base = dict(profile="fused", tagger="none", object_name=TAG, llm="none", device="cpu", num_normal=5,
                feature_size=128, box_threshold=0.2, text_threshold=0.2, reference_stages=[2, 3, 4])
    base.update(kw)
    return PipelineConfig(**base)


@pytest.fixture(scope="module")
def scripted():
    cfg = _config()
    prof = FusedProfile(resolve(cfg), detector=TwoBoxDetector(), segmenter=RectSegmenter())
    ctx = prof.fit(_normals())
    return prof, ctx


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_region_on_a_defect_keeps_its_score_and_one_on_normal_surface_is_suppressed(scripted) -> None:
    prof, ctx = scripted
    assert ctx.profile == "fused" and ctx.object_tag == TAG and "bank_features" in ctx.arrays
    img = _hole_image()
    paper = PaperProfile(prof.settings, detector=TwoBoxDetector(), segmenter=RectSegmenter()).predict(img, ctx)
    fused = prof.predict(img, ctx)
    by_phrase = {b.phrase: b.score for b in fused.boxes}
    assert {b.phrase for b in paper.boxes} == set(by_phrase)
    assert by_phrase["hole"] > 0.6, "the region on the hole keeps most of its score"
    assert by_phrase["defect"] < 0.6 * by_phrase["hole"], "the region on normal texture is suppressed"
    assert fused.boxes.box(0).phrase == "hole" and fused.profile == "fused"
    # the map is the paper's Step 2-4 with the new scores
    assert fused.score_map[40, 40] == pytest.approx(by_phrase["hole"], rel=1e-5)
    assert fused.score_map[70, 70] == pytest.approx(by_phrase["defect"], rel=1e-5)
    assert fused.score_map[10, 10] == 0.0
    assert fused.image_score == pytest.approx(float(fused.score_map.max()))
    assert all(f.score <= p.score + 1e-9 for f, p in zip(sorted(fused.boxes, key=lambda b: b.phrase),
                                                          sorted(paper.boxes, key=lambda b: b.phrase)))


@pytest.mark.slow  # its module fixture fits a profile (seconds): out of the fast loop, run by CI
def test_fused_judges_each_box_by_its_own_sam_mask_not_by_the_box(scripted) -> None:
    """The box lies on normal texture, its mask on the hole: the mask decides (before issue 13 the box,
    intersected with the map's support, decided, and this region was suppressed)."""
    _, ctx = scripted
    prof = FusedProfile(resolve(ctx.config), detector=OneBoxDetector(), segmenter=DiskSegmenter())
    fused = prof.predict(_hole_image(), ctx)
    assert list(fused.boxes.phrases) == ["defect"]
    score = float(fused.boxes.scores[0])
    assert score > 0.6, "the mask covers the hole: the region keeps most of its score"
    assert fused.boxes.masks is not None and fused.boxes.masks[0, 40, 40] and not fused.boxes.masks[0, 70, 70]
    assert fused.score_map[40, 40] == pytest.approx(score, rel=1e-6), "the map follows the mask"
    assert fused.score_map[70, 70] == 0.0, "the box outside its mask adds nothing"
    np.testing.assert_array_equal(fused.mask, fused.boxes.masks[0])
    # the same box segmented as itself (normal texture) is suppressed
    as_box = FusedProfile(resolve(ctx.config), detector=OneBoxDetector(), segmenter=RectSegmenter()).predict(_hole_image(), ctx)
    assert float(as_box.boxes.scores[0]) < 0.5 * score


def test_box_mask_clips_to_the_image() -> None:
    m = box_mask(np.array([15.2, -3, 40, 4.5]), (10, 20))
    assert m.sum() == 5 * 5 and m[0:5, 15:20].all()


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_fused_with_tiny_grounding_dino_and_sam(tiny_gdino, tiny_sam, tmp_path) -> None:
    # thresholds 0 and no size filter: on this image every tiny-detector box is as small as the object
    # box, so the filter would remove them all and the map would be trivially 0
    cfg = _config(detector=str(tiny_gdino), segmenter=str(tiny_sam), num_normal=3, feature_size=64,
                  box_threshold=0.0, text_threshold=0.0, use_filter=False)
    pipe = Pipeline(cfg)
    assert pipe.profile == "fused"
    ctx = pipe.runner.fit(_normals()[:3])
    path = ctx.save(tmp_path / "ctx.json")
    back = Context.load(path)
    img = _img(load_texture("grass")[:60, :90].copy())
    a = pipe.predict_one(img, ctx)
    b = Pipeline(back.config).predict_one(img, back)
    assert a.profile == "fused" and a.score_map.shape == (60, 90)
    np.testing.assert_array_equal(a.score_map, b.score_map)
    paper = PaperProfile(resolve(cfg)).predict(img, ctx)
    assert len(paper.boxes) > 0 and len(a.boxes) == len(paper.boxes)
    masks = paper.boxes.masks
    assert masks is not None and masks.any()
    outside = [bool((m & ~box_mask(xy, m.shape)).any()) for m, xy in zip(masks, paper.boxes.xyxy)]
    assert any(outside), "SAM's masks are not the boxes (the tiny SAM spills far outside them)"
    # independent oracle: the factors from each box's own SAM mask and the raw distance map
    raw = pipe.runner.offline.reference_map(img, ctx)
    t, mu = float(ctx.reference.calibration.threshold), float(ctx.reference.get("normal_pixel_mean"))
    factors = np.array([np.clip((raw[m].mean() - mu) / (t - mu), 0, 1) if m.any() else 0.0 for m in masks])
    new_scores = paper.boxes.scores.astype(np.float64) * factors
    expected = np.clip(sum(s * m for s, m in zip(new_scores, masks.astype(np.float64))), 0, 1)
    np.testing.assert_allclose(a.score_map, expected, atol=1e-6)
    assert a.score_map.max() > 0.0, "some box is re-scored above 0"
    np.testing.assert_allclose(np.sort(a.boxes.scores)[::-1], np.sort(new_scores)[::-1], rtol=1e-6)
    assert list(a.boxes.scores) == sorted(a.boxes.scores, reverse=True)
