"""Step 2-1: detector backends (tiny random Grounding DINO / MM-Grounding-DINO / OWLv2), NMS, loading errors."""
from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iapas.errors import ModelLoadError, SettingsError
from iapas.models import device as device_mod
from iapas.models.loading import cache_size, clear_model_cache, explain_load_failure, load_model
from iapas.models.resolve import describe_model, paper_weights_available
from iapas.config import PipelineConfig
from iapas.models.detector import (
    GroundingDinoDetector,
    OwlDetector,
    assign_phrase,
    caption,
    chunk_phrases,
    clip_box,
    load_detector,
    normalize_phrases,
    token_spans,
)
from iapas.stages.nms import iou_matrix, nms, nms_indices
from iapas.types import Box, Detections

PROMPT = ["crack", "scratch", "magnetic tile", "hole", "dent", "stain", "rust", "chip", "blowhole"]


def _image(h: int = 50, w: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 255, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- prompt text and phrase mapping


def test_normalize_phrases_lowercases_strips_dots_and_dedupes():
    assert normalize_phrases(["Crack.", " crack ", "Magnetic  Tile", "", "."]) == ["crack", "magnetic tile"]


def test_caption_joins_with_dots_and_spans_point_at_each_phrase():
    text, spans = caption(["crack", "magnetic tile"])
    assert text == "crack. magnetic tile."
    assert [text[s:e] for s, e in spans] == ["crack", "magnetic tile"]


def test_chunk_phrases_respects_token_budget_and_keeps_order():
    count = lambda text: len(re.findall(r"\w+|\.", text)) + 2  # noqa: E731  words, dots, CLS/SEP
    assert count("a. b c.") == 7
    chunks = chunk_phrases(["a", "b c", "d", "e f g", "h"], count, 8)
    assert chunks == [["a", "b c"], ["d", "e f g"], ["h"]]
    assert all(count(caption(c)[0]) <= 8 for c in chunks)
    assert chunk_phrases(["one two three four five six seven"], count, 4) == [["one two three four five six seven"]]
    assert chunk_phrases([], count, 4) == []


def test_token_spans_map_offsets_to_phrases():
    # "crack. magnetic tile." tokens: CLS, crack, ., magnetic, tile, ., SEP
    offsets = [(0, 0), (0, 5), (5, 6), (7, 15), (16, 20), (20, 21), (0, 0)]
    assert token_spans(offsets, [(0, 5), (7, 20)]) == [[1], [3, 4]]


def test_assign_phrase_exact_subword_and_empty_labels():
    phrases = ["crack", "magnetic tile", "hole"]
    assert assign_phrase("magnetic tile", phrases, [0.1, 0.2, 0.3]) == "magnetic tile"
    assert assign_phrase("tile", phrases, [0.9, 0.2, 0.3]) == "magnetic tile"  # shares a word
    assert assign_phrase("crack tile", phrases, [0.4, 0.6, 0.0]) == "magnetic tile"  # two candidates: token score
    assert assign_phrase("", phrases, [0.1, 0.2, 0.7]) == "hole"  # empty: strongest token span
    assert assign_phrase(". [SEP]", phrases, [0.8, 0.2, 0.7]) == "crack"
    assert assign_phrase("dent", phrases, [0.1, 0.5, 0.2]) == "magnetic tile"  # no shared word


def test_clip_box_clips_and_drops_empty():
    assert clip_box((-5, 10, 50, 120), 40, 100) == (0.0, 10.0, 40.0, 100.0)
    assert clip_box((45, 10, 60, 20), 40, 100) is None


# ---------------------------------------------------------------- box scaling with real processors


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_grounding_dino_scales_normalised_boxes_to_pixels(tiny_gdino):
    det = load_detector(str(tiny_gdino), "cpu")
    assert isinstance(det, GroundingDinoDetector) and det.max_tokens == 16
    chunk = ["crack", "scratch"]
    text, char_spans = caption(chunk)
    enc = det.processor.tokenizer(text, return_offsets_mapping=True)
    spans = token_spans([tuple(o) for o in enc["offset_mapping"]], char_spans)
    assert spans == [[1], [3]]
    input_ids = torch.tensor([enc["input_ids"]])
    logits = torch.full((1, 4, 16), -10.0)
    logits[0, :, len(enc["input_ids"]) :] = float("-inf")  # padding, as the model emits it
    logits[0, 0, 3] = 5.0  # query 0 -> "scratch"
    logits[0, 1, 1] = 2.0  # query 1 -> "crack"
    logits[0, 3, 2] = 5.0  # query 3 -> only the '.' token: empty label
    logits[0, 3, 1] = 0.0  # ... whose strongest phrase token is "crack"
    boxes = torch.tensor([[[0.5, 0.25, 0.2, 0.1], [0.95, 0.5, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]]])
    out = det.boxes_from_outputs(
        SimpleNamespace(logits=logits, pred_boxes=boxes), input_ids, spans, chunk, 0.3, 0.6, (100, 200)
    )
    assert [b.phrase for b in out] == ["scratch", "crack", "crack"]
    assert out.box(0).xyxy == pytest.approx((80.0, 20.0, 120.0, 30.0), abs=1e-3)
    assert out.box(1).xyxy == pytest.approx((170.0, 40.0, 210.0, 60.0), abs=1e-3)  # not clipped (clipped before SAM)
    assert out.box(2).xyxy == pytest.approx((10.0, 5.0, 30.0, 15.0), abs=1e-3)
    assert out.box(0).score == pytest.approx(1 / (1 + math.exp(-5.0)), abs=1e-5)
    assert out.box(1).score == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-5)


def test_raw_labels_keep_the_detectors_merged_phrase(tiny_gdino):
    """Official object-tag rule: the label is the prompt tokens above the text threshold, merged as they come."""
    det = load_detector(str(tiny_gdino), "cpu")
    chunk = ["crack", "scratch"]
    text, char_spans = caption(chunk)
    enc = det.processor.tokenizer(text, return_offsets_mapping=True)
    spans = token_spans([tuple(o) for o in enc["offset_mapping"]], char_spans)
    input_ids = torch.tensor([enc["input_ids"]])
    logits = torch.full((1, 2, 16), -10.0)
    logits[0, :, len(enc["input_ids"]) :] = float("-inf")
    logits[0, 0, 1] = 3.0  # query 0 -> "crack" and "scratch" both above the text threshold
    logits[0, 0, 3] = 2.0
    logits[0, 1, 3] = 4.0  # query 1 -> "scratch" only
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.1]]])
    args = (SimpleNamespace(logits=logits, pred_boxes=boxes), input_ids, spans, chunk, 0.5, 0.6, (100, 200))
    assert [b.phrase for b in det.boxes_from_outputs(*args)] == ["crack", "scratch"]
    raw = det.boxes_from_outputs(*args, raw_labels=True)
    assert [b.phrase for b in raw] == ["crack scratch", "scratch"]
    assert [b.xyxy for b in raw] == [b.xyxy for b in det.boxes_from_outputs(*args)]
    real = det.detect_raw(_image(), ["crack", "scratch"], 0.0, 0.0)
    assert len(real) > 0 and all(set(b.phrase.split()) <= {"crack", "scratch"} for b in real)


def test_owlv2_scales_by_padded_square_side(tiny_owlv2):
    det = load_detector(str(tiny_owlv2), "cpu")
    assert isinstance(det, OwlDetector) and det.pads_to_square
    logits = torch.tensor([[[-5.0, 3.0], [4.0, -5.0], [-9.0, -9.0]]])
    boxes = torch.tensor([[[0.5, 0.25, 0.2, 0.1], [0.5, 0.8, 0.2, 0.1], [0.5, 0.5, 0.5, 0.5]]])
    out = det.boxes_from_outputs(SimpleNamespace(logits=logits, pred_boxes=boxes), ["crack", "hole"], 0.3, (50, 100))
    # image 100 wide x 50 high is padded to 100 x 100: the second box lies in the padding and is dropped
    assert len(out) == 1
    assert out.box(0).phrase == "hole"
    assert out.box(0).xyxy == pytest.approx((40.0, 20.0, 60.0, 30.0), abs=1e-3)
    assert out.box(0).score == pytest.approx(1 / (1 + math.exp(-3.0)), abs=1e-5)


# ---------------------------------------------------------------- end-to-end with tiny random models


def test_grounding_dino_detect_boxes_inside_image_with_prompt_phrases(tiny_gdino):
    det = load_detector(str(tiny_gdino), "cpu")
    rgb = _image(50, 80)
    boxes = det.detect(rgb, PROMPT, 0.2, 0.2)
    assert len(boxes) > 0, "a random model at a low threshold finds boxes"
    for b in boxes:
        x0, y0, x1, y1 = b.xyxy
        assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 50
        assert b.phrase in PROMPT
        assert 0.2 < b.score <= 1.0
    again = det.detect(rgb, PROMPT, 0.2, 0.2)
    assert [(b.xyxy, b.phrase) for b in again] == [(b.xyxy, b.phrase) for b in boxes]


def test_long_prompt_is_chunked_and_all_chunks_are_merged(tiny_gdino, monkeypatch):
    det = load_detector(str(tiny_gdino), "cpu")
    chunks = det.chunks(PROMPT)
    assert len(chunks) >= 2 and [p for c in chunks for p in c] == PROMPT
    assert all(det.count_tokens(caption(c)[0]) <= det.max_tokens for c in chunks)
    seen: list[list[str]] = []
    real = det._detect_chunk

    def spy(image, chunk, bt, tt, **kw):
        out = real(image, chunk, bt, tt, **kw)
        seen.append([b.phrase for b in out])
        assert all(b.phrase in chunk for b in out)  # a chunk only names its own phrases
        return out

    monkeypatch.setattr(det, "_detect_chunk", spy)
    boxes = det.detect(_image(), PROMPT, 0.0, 0.0)
    assert len(seen) == len(chunks)
    assert all(seen), "every chunk contributes boxes at threshold 0"
    assert [b.phrase for b in boxes] == [p for part in seen for p in part]


def test_mm_grounding_dino_uses_the_grounding_backend(tiny_mm_gdino):
    det = load_detector(str(tiny_mm_gdino), "cpu")
    assert isinstance(det, GroundingDinoDetector)
    assert det.loaded.model_type == "mm-grounding-dino"
    assert type(det.model).__name__ == "MMGroundingDinoForObjectDetection"
    boxes = det.detect(_image(40, 60), ["crack", "hole"], 0.0, 0.0)
    assert len(boxes) > 0, "every query passes threshold 0"
    for b in boxes:
        assert b.phrase in ("crack", "hole")
        assert 0 <= b.xyxy[0] < b.xyxy[2] <= 60 and 0 <= b.xyxy[1] < b.xyxy[3] <= 40


def test_owlv2_detect_end_to_end(tiny_owlv2):
    det = load_detector(str(tiny_owlv2), "cpu")
    boxes = det.detect(_image(50, 80), ["Crack", "magnetic tile", "hole"], 0.0, 0.9)
    assert len(boxes) > 0
    for b in boxes:
        assert b.phrase in ("crack", "magnetic tile", "hole")
        assert b.xyxy[0] < b.xyxy[2] and b.xyxy[1] < b.xyxy[3]  # not clipped: the paper profile clips before SAM
        clipped = Detections.from_boxes([b]).clipped(80, 50).box(0)
        assert 0 <= clipped.xyxy[0] < clipped.xyxy[2] <= 80 and 0 <= clipped.xyxy[1] < clipped.xyxy[3] <= 50
    assert isinstance(boxes, Detections) and len(det.detect(_image(), [], 0.0, 0.0)) == 0


# ---------------------------------------------------------------- NMS


def test_iou_matrix_exact_values():
    a = np.array([[0, 0, 10, 10], [5, 0, 15, 10]])
    iou = iou_matrix(a, a)
    assert iou[0, 0] == 1.0 and iou[0, 1] == pytest.approx(50 / 150)
    assert iou_matrix(np.array([[0, 0, 0, 0]]), np.array([[0, 0, 0, 0]]))[0, 0] == 0.0


def test_nms_is_class_agnostic_and_keeps_iou_at_threshold():
    boxes = Detections.from_boxes([
        Box((0, 0, 10, 10), "crack", 0.9),
        Box((1, 0, 11, 10), "scratch", 0.8),  # IoU 90/110 > 0.5 with the first: removed despite another phrase
        Box((0, 0, 10, 10), "hole", 0.7),  # same box: IoU 1.0: removed
        Box((20, 0, 30, 10), "dent", 0.6),  # disjoint: kept
        Box((20, 0, 30, 30), "rust", 0.95),  # IoU with 'dent' = 100/300 < 0.5: kept
    ])
    kept = nms(boxes, 0.5)
    assert [b.phrase for b in kept] == ["rust", "crack", "dent"]
    # IoU exactly 0.5 is kept (torchvision semantics: suppress only when IoU > threshold)
    exact = Detections.from_boxes([Box((0, 0, 30, 10), "a", 0.9), Box((10, 0, 30, 10), "b", 0.8)])  # IoU 2/3
    assert len(nms(exact, 2 / 3)) == 2 and len(nms(exact, 0.66)) == 1
    assert len(nms(Detections.empty(), 0.5)) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40), st.integers(0, 40), st.integers(1, 30), st.integers(1, 30), st.floats(0.01, 1.0)
        ),
        max_size=25,
    ),
    st.sampled_from([0.3, 0.5, 0.7]),
)
def test_nms_properties(raw, thr):
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in raw], dtype=float).reshape(-1, 4)
    scores = np.array([s for *_, s in raw])
    keep = nms_indices(xyxy, scores, thr)
    iou = iou_matrix(xyxy, xyxy)
    for i in keep:  # survivors do not overlap each other above the threshold
        for j in keep:
            assert i == j or iou[i, j] <= thr
    for r in set(range(len(raw))) - set(keep.tolist()):  # each removed box is covered by a better survivor
        assert any(iou[r, k] > thr and scores[k] >= scores[r] for k in keep)
    assert list(scores[keep]) == sorted(scores[keep], reverse=True)


# ---------------------------------------------------------------- loading: cache and errors


def test_models_load_once_per_process(tiny_gdino):
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    clear_model_cache()
    a = load_model(AutoModelForZeroShotObjectDetection, AutoProcessor, str(tiny_gdino), "cpu", "float32")
    b = load_model(AutoModelForZeroShotObjectDetection, AutoProcessor, str(tiny_gdino) + "/", "cpu", "auto")
    assert a is b and cache_size() == 1
    assert a.revision == "local" and a.model_type == "grounding-dino" and not a.model.training
    c = load_model(AutoModelForZeroShotObjectDetection, AutoProcessor, str(tiny_gdino), "cpu", "bfloat16")
    assert c is not a and c.model.dtype == torch.bfloat16


def test_missing_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_detector(str(tmp_path / "nowhere" / "gdino"), "cpu")
    assert "no such local" in str(err.value)


def test_uncached_hub_id_offline_suggests_local_path_and_offline_profile():
    with pytest.raises(ModelLoadError) as err:
        load_detector("iapas-test-org/not-a-real-detector", "cpu")
    msg = str(err.value)
    assert "iapas-test-org/not-a-real-detector" in msg and "--profile offline" in msg and "local directory" in msg


def test_wrong_model_type_is_refused(tiny_sam):
    with pytest.raises(ModelLoadError) as err:
        load_detector(str(tiny_sam), "cpu")
    assert "'sam'" in str(err.value) and "detector" in str(err.value)


def test_folder_without_checkpoint_is_explained(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_detector(str(tmp_path), "cpu")
    assert "checkpoint" in str(err.value) or "config.json" in str(err.value)


def test_error_classification_gated_and_missing_package():
    from huggingface_hub.errors import GatedRepoError

    gated = OSError("You are trying to access a gated repo.")
    gated.__cause__ = GatedRepoError("401 Client Error", response=SimpleNamespace(headers={}, status_code=401, request=None, url=""))
    err = explain_load_failure("meta-llama/Meta-Llama-3-8B-Instruct", gated)
    assert "gated" in err.why and "HF_TOKEN" in err.todo and "hf auth login" in err.todo
    missing = ImportError("requires the timm library but it was not found", name="timm")
    err = explain_load_failure("x/y", missing)
    assert "timm" in err.why and "pip install timm" in err.todo
    other = explain_load_failure("x/y", RuntimeError("boom"))
    assert "boom" in str(other)


# ---------------------------------------------------------------- weight resolution (no network)


def test_describe_model_local_missing_none_and_cache(tiny_gdino, tmp_path, monkeypatch):
    assert describe_model(str(tiny_gdino))["source"] == "local"
    assert describe_model("none")["source"] == "none"
    assert describe_model("iapas-test-org/absent")["source"] == "missing"
    assert describe_model("./no/such/dir")["source"] == "missing"
    assert describe_model("bad id with spaces")["source"] == "missing"
    # a hub-cache layout: models--org--name/snapshots/<commit>/config.json
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "hub" / "models--org--tiny-dino" / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--tiny-dino" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny-dino" / "refs" / "main").write_text(commit)
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    info = describe_model("org/tiny-dino")
    assert info["source"] == "cache" and info["revision"] == commit
    cfg = PipelineConfig(detector="org/tiny-dino", segmenter="org/absent-sam")
    assert not paper_weights_available(cfg)
    assert paper_weights_available(cfg.model_copy(update={"segmenter": str(tiny_gdino)}))


# ---------------------------------------------------------------- device and dtype


def test_device_and_dtype_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device_mod.resolve_device("auto") == "cpu"
    assert device_mod.resolve_dtype("auto", "cpu") == torch.float32
    with pytest.raises(SettingsError):
        device_mod.resolve_device("cuda")
    with pytest.raises(SettingsError):
        device_mod.resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert device_mod.resolve_device("auto") == "cuda"
    assert device_mod.resolve_dtype("auto", "cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert device_mod.resolve_dtype("auto", "cuda:0") == torch.bfloat16
    assert device_mod.resolve_dtype("float16", "cpu") == torch.float16
    with pytest.raises(SettingsError):
        device_mod.resolve_dtype("int8", "cpu")


def test_phrase_longer_than_the_text_encoder_gets_its_own_truncated_chunk(tiny_gdino):
    det = load_detector(str(tiny_gdino), "cpu")
    long = " ".join(["crack", "scratch", "hole", "dent", "stain", "rust", "chip"] * 3)
    assert det.chunks(["defect", long, "hole"]) == [["defect"], [long], ["hole"]]
    boxes = det.detect(_image(), ["defect", long, "hole"], 0.0, 0.0)
    assert {b.phrase for b in boxes} <= {"defect", long, "hole"} and len(boxes) > 0


def _fake_hub_cache(root, repo: str, files_from, commit: str = "89abcdef0123456789abcdef0123456789abcdef"):
    """The huggingface_hub cache layout (models--org--name/{refs/main, snapshots/<commit>/...})."""
    import shutil

    repo_dir = root / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / commit
    shutil.copytree(files_from, snap)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return commit


def test_cached_hub_id_loads_without_network_when_hub_unreachable(tiny_gdino, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    from iapas.models import hub

    commit = _fake_hub_cache(tmp_path, "org/cached-dino", tiny_gdino)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    assert hub.hub_offline()
    clear_model_cache()
    det = load_detector("org/cached-dino", "cpu")
    assert det.revision == commit and det.model_id == "org/cached-dino"
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        load_detector("org/uncached-dino", "cpu")


def test_hub_reachable_probe_fails_fast_on_a_closed_port(monkeypatch):
    import socket

    import huggingface_hub.constants as hub_constants

    from iapas.models import hub

    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    hub.hub_reachable.cache_clear()
    try:
        assert hub.hub_reachable(timeout=1.0) is False
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{srv.getsockname()[1]}")
            hub.hub_reachable.cache_clear()
            assert hub.hub_reachable(timeout=1.0) is True
    finally:
        hub.hub_reachable.cache_clear()
