"""Step 1-1: tag selection, aggregation, anomaly-tag removal, object-tag choice, real tiny CLIP/SigLIP."""
from __future__ import annotations


import numpy as np
import pytest

from iapas.errors import InputError, ModelLoadError
from iapas.stages.object_tag import choose_object_tag, match_phrase
from iapas.models.tagger import ClipTagger, load_tagger, select_tags
from iapas.stages.tagging import aggregate_tags, tag_images
from iapas.models.vocabulary import is_anomaly_like, split_anomaly_tags, vocabulary
from iapas.types import Box, Detections



@pytest.mark.parametrize("tag", ["crack", "cracks", "scratched metal", "Holes", "rust", "broken glass", "damage"])
def test_anomaly_like(tag: str) -> None:
    assert is_anomaly_like(tag)


@pytest.mark.parametrize("tag", ["bottle", "metal nut", "magnetic tile", "glass", "screw", "wood grain", "scratchpad pen"])
def test_not_anomaly_like(tag: str) -> None:
    assert not is_anomaly_like(tag)


def test_split_anomaly_tags_keeps_order() -> None:
    kept, removed = split_anomaly_tags(["tile", "crack", "metal", "stained wood", "grid"])
    assert kept == ["tile", "metal", "grid"] and removed == ["crack", "stained wood"]


def test_select_tags_top_k_and_relative_threshold() -> None:
    terms = ["a", "b", "c", "d"]
    scores = np.array([0.1, 0.5, 0.05, 0.3])
    assert select_tags(scores, terms, top_k=3, min_relative=0.2) == [("b", 0.5), ("d", 0.3), ("a", 0.1)]
    assert select_tags(scores, terms, top_k=3, min_relative=0.5) == [("b", 0.5), ("d", 0.3)]
    assert select_tags(np.array([0.2, 0.2]), ["x", "y"], top_k=1) == [("x", 0.2)]  # tie -> vocab order


def test_aggregate_by_image_count_then_score() -> None:
    per_image = [[("tile", 0.3), ("metal", 0.5)], [("tile", 0.2), ("grid", 0.9)], [("metal", 0.1), ("tile", 0.1)]]
    assert aggregate_tags(per_image) == ["tile", "metal", "grid"]
    assert aggregate_tags(per_image, max_tags=1) == ["tile"]


class FakeDetector:
    """Returns fixed boxes per call (pure logic of the object-tag choice)."""

    model_id = "fake-detector"

    def __init__(self, per_call: list[list[Box]] | None = None, fail_first: bool = False) -> None:
        self.per_call = per_call or []
        self.calls: list[list[str]] = []
        self.fail_first = fail_first

    def detect(self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float) -> Detections:
        self.calls.append(list(phrases))
        i = len(self.calls) - 1
        if self.fail_first and i == 0:
            raise InputError("img0", "unreadable")
        return Detections.from_boxes(self.per_call[i] if i < len(self.per_call) else [])


def _box(phrase: str, score: float) -> Box:
    return Box((0, 0, 10, 10), phrase, score)


IMAGES = [np.zeros((16, 16, 3), np.uint8)] * 3


def test_object_tag_is_highest_detection_score() -> None:
    det = FakeDetector([[_box("tile", 0.4), _box("metal", 0.5)], [_box("grid", 0.45)], [_box("tile", 0.7)]])
    choice = choose_object_tag(["metal", "tile", "grid"], IMAGES, det, 0.2, 0.2)
    assert choice.tag == "tile" and choice.scores == {"tile": 0.7, "metal": 0.5, "grid": 0.45}
    assert det.calls == [["metal", "tile", "grid"]] * 3 and not choice.warnings


def test_object_tag_maps_partial_phrases() -> None:
    assert match_phrase("Metal Nut", ["metal", "metal nut"]) == "metal nut"
    assert match_phrase("nut", ["metal", "metal nut"]) == "metal nut"
    assert match_phrase("screw", ["metal", "metal nut"]) is None
    det = FakeDetector([[_box("nut", 0.6), _box("metal", 0.3)]])
    assert choose_object_tag(["metal", "metal nut"], IMAGES[:1], det, 0.2, 0.2).tag == "metal nut"


def test_object_tag_fallbacks_warn() -> None:
    no_det = choose_object_tag(["grid", "metal"], IMAGES, None, 0.2, 0.2)
    assert no_det.tag == "grid" and "no detector" in no_det.warnings[0]
    nothing = choose_object_tag(["grid", "metal"], IMAGES, FakeDetector(), 0.2, 0.2)
    assert nothing.tag == "grid" and "found none" in nothing.warnings[0]
    empty = choose_object_tag([], IMAGES, FakeDetector(), 0.2, 0.2)
    assert empty.tag is None and empty.warnings
    bad = choose_object_tag(["grid"], IMAGES[:2], FakeDetector([[], [_box("grid", 0.3)]], fail_first=True), 0.2, 0.2)
    assert bad.tag == "grid" and "img0" in bad.warnings[0]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tiny.stage1_models import build_tiny_clip

    return str(build_tiny_clip(tmp_path_factory.mktemp("clip")))


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tiny.stage1_models import build_tiny_siglip

    return str(build_tiny_siglip(tmp_path_factory.mktemp("siglip")))


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (40 + 8 * i, 50, 3), dtype=np.uint8) for i in range(3)]


@pytest.mark.parametrize("which", ["tiny_clip", "tiny_siglip"])
def test_real_tiny_tagger_loads_by_path_and_is_deterministic(which: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(which)
    tagger = load_tagger(path, "cpu")
    assert load_tagger(path, "cpu") is tagger  # loaded once per process
    assert isinstance(tagger, ClipTagger) and tagger.kind == ("clip" if which == "tiny_clip" else "siglip")
    scores = tagger.scores(_images()[0])
    assert scores.shape == (len(vocabulary()),) and np.all(scores >= 0) and np.all(scores <= 1)
    if tagger.kind == "clip":
        assert scores.sum() == pytest.approx(1.0, abs=1e-4)
    first = tag_images(tagger, _images())
    second = tag_images(tagger, _images())
    assert first.tags == second.tags and 1 <= len(first.tags) <= 12
    assert all(t in vocabulary() for t in first.tags)
    assert tagger.revision == "local"


def test_tagger_load_errors_are_clear(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="no such local file or directory"):  # the loader's one message
        ClipTagger(str(tmp_path / "missing"), "cpu")
    with pytest.raises(ModelLoadError, match="ram"):
        load_tagger("ram++", "cpu")
