"""build_context end to end with tiny real models: full path, ablation switches, determinism."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iapas.config import BASE_CAPTION, FIXED_PROMPTS, PipelineConfig
from iapas.context import Context
from iapas.io.images import LoadedImage
from iapas.settings import LlmSettings, llm_settings, resolve
from iapas.models.llm import Sampling, load_llm, sampling_for
from iapas.stages.llm_answer import dedupe_phrases
from iapas.stages.stage1 import build_context
from iapas.types import Box, Detections

from test_llm_backends import _Server



class GroundingStub:
    """Detector that 'finds' the second phrase it is given, with a score growing per call."""

    model_id = "stub-grounding"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float) -> Detections:
        self.calls += 1
        assert box_threshold == text_threshold == 0.1  # texture preset from the config
        target = phrases[1] if len(phrases) > 1 else phrases[0]
        return Detections.from_boxes([Box((1, 1, 5, 5), target, 0.3 + 0.1 * self.calls), Box((0, 0, 2, 2), phrases[0], 0.2)])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from tiny.stage1_models import build_tiny_chat_lm, build_tiny_clip

    return {
        "tagger": str(build_tiny_clip(tmp_path_factory.mktemp("clip"))),
        "llm": str(build_tiny_chat_lm(tmp_path_factory.mktemp("lm"))),
    }


def _normal(n: int = 3) -> list[LoadedImage]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        rgb = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        out.append(LoadedImage(path=f"/data/good/{i:03d}.png", rgb=rgb, original_size=(64, 48)))
    return out


def test_full_stage1_with_tiny_models(models: dict[str, str]) -> None:
    cfg = PipelineConfig(
        tagger=models["tagger"], llm=models["llm"], kind="texture", device="cpu", llm_max_new_tokens=16,
        object_tag_rule="match", llm_prompt="expert", llm_parse="iapas",
    )
    det = GroundingStub()
    ctx = build_context(_normal(), resolve(cfg), det, "paper")
    assert det.calls == 3
    assert ctx.profile == "paper" and ctx.seed == 111 and ctx.normal_images == [f"/data/good/{i:03d}.png" for i in range(3)]
    assert ctx.tags and ctx.object_tag == ctx.tags[1]  # 'match' rule: highest grounding score, mapped to a tag
    fidelity = ctx.model_dump(mode="json")["fidelity"]
    assert fidelity["object_tag_rule"] == "match" and fidelity["llm_prompt"] == "expert" and fidelity["llm_parse"] == "iapas"
    assert fidelity["tagger"].startswith("clip stand-in") and any("deviates from the paper" in w for w in ctx.warnings)
    assert not set(ctx.tags) & set(ctx.removed_tags)
    assert ctx.llm_request and ctx.object_tag in ctx.llm_request
    assert ctx.llm_raw_answer is not None
    assert ctx.final_prompt == dedupe_phrases([*ctx.defect_words, *FIXED_PROMPTS, ctx.object_tag])
    assert len(ctx.final_prompt) == len(set(ctx.final_prompt))
    assert ctx.thresholds.model_dump(exclude_none=True) == {"box_threshold": 0.1, "text_threshold": 0.1, "nms_iou": 0.5, "size_threshold": 0.8}
    assert ctx.models["tagger"] == {"id": models["tagger"], "revision": "local"}
    assert ctx.models["llm"] == {"id": models["llm"], "revision": "local"}
    assert ctx.models["detector"]["id"] == "stub-grounding"
    scores = ctx.model_dump(mode="json")["object_tag_scores"]
    assert max(scores, key=scores.get) == ctx.object_tag and scores[ctx.object_tag] == pytest.approx(0.6)


def test_same_inputs_same_context_json(models: dict[str, str], tmp_path: Path) -> None:
    cfg = PipelineConfig(tagger=models["tagger"], llm=models["llm"], kind="texture", device="cpu", llm_max_new_tokens=16)
    a = build_context(_normal(), resolve(cfg), GroundingStub(), "paper").save(tmp_path / "a.json")
    b = build_context(_normal(), resolve(cfg), GroundingStub(), "paper").save(tmp_path / "b.json")
    assert a.read_text() == b.read_text()
    assert Context.load(a).final_prompt == json.loads(a.read_text())["final_prompt"]


def test_baseline_is_fixed_prompts_only() -> None:
    cfg = PipelineConfig(baseline=True, tagger="does/not-exist", llm="does/not-exist")  # nothing may load
    ctx = build_context(_normal(), resolve(cfg), None, "paper")
    assert ctx.final_prompt == [BASE_CAPTION]
    assert ctx.tags == [] and ctx.object_tag is None and ctx.llm_request is None and ctx.models == {}


def test_llm_none_gives_fixed_prompts_only_as_the_official_ablation(models: dict[str, str]) -> None:
    cfg = PipelineConfig(tagger=models["tagger"], llm="none", device="cpu")
    ctx = build_context(_normal(), resolve(cfg), None, "paper")
    assert ctx.object_tag == ctx.tags[0]  # no detector -> top tag, with a warning; it still bounds the size filter
    assert any("no detector" in w for w in ctx.warnings)
    assert ctx.final_prompt == [BASE_CAPTION] == ["defect, abnormal"]  # test_ablation.py: anomaly_tags = 'defect, abnormal'
    assert ctx.llm_request is None and "llm" not in ctx.models


def test_tagger_none_uses_the_given_object() -> None:
    cfg = PipelineConfig(tagger="none", object_name="magnetic tile", llm="none", profile="paper")
    ctx = build_context(_normal(), resolve(cfg), GroundingStub(), "paper")
    assert ctx.tags == ["magnetic tile"] and ctx.object_tag == "magnetic tile"
    assert ctx.final_prompt == [BASE_CAPTION]


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_llm_words_from_server_lead_the_prompt() -> None:
    """iapas's named options: expert template + robust parser (the official ones are in test_paper_fidelity)."""
    answer = "Here are common defects of a magnetic tile:\n1. Crack\n2. Blowhole\n3. Fray\n4. Uneven surface\n5. Defect"
    with _Server([(200, answer, 0.0)]) as srv:
        cfg = PipelineConfig(tagger="none", object_name="magnetic tile", llm="openai:m", llm_base_url=srv.url,
                             llm_prompt="expert", llm_parse="iapas", llm_decoding="greedy")
        ctx = build_context(_normal(), resolve(cfg), None, "paper")
    assert "magnetic tile" in srv.requests[0]["messages"][1]["content"]
    assert ctx.llm_raw_answer == answer and ctx.defect_words == ["crack", "blowhole", "fray", "uneven surface"]
    assert ctx.final_prompt == ["crack", "blowhole", "fray", "uneven surface", "abnormal", "defect", "magnetic tile"]
    assert ctx.models["llm"] == {"id": "m", "revision": "server"}
    assert srv.requests[0]["temperature"] == 0 and "top_p" not in srv.requests[0]  # greedy


def test_unusable_answer_falls_back_with_warning() -> None:
    with _Server([(200, "I am sorry, I cannot see any image here.", 0.0)]) as srv:
        cfg = PipelineConfig(tagger="none", object_name="bottle", llm="openai:m", llm_base_url=srv.url, llm_parse="iapas")
        ctx = build_context(_normal(), resolve(cfg), None, "paper")
    assert ctx.defect_words == [] and ctx.final_prompt == [*FIXED_PROMPTS, "bottle"]
    assert any("no usable defect phrase" in w for w in ctx.warnings)


@pytest.mark.parametrize("none", ["NONE", "None"])
def test_none_in_any_case_skips_tagging_and_the_llm(none: str) -> None:
    """Stage 1 treats 'NONE' exactly as 'none': no tagger or LLM is loaded, fixed prompts only."""
    built = build_context(_normal(), resolve(PipelineConfig(tagger=none, object_name="tile", llm=none)), None, "paper")
    lower = build_context(_normal(), resolve(PipelineConfig(tagger="none", object_name="tile", llm="none")), None, "paper")
    assert built.final_prompt == [BASE_CAPTION] and built.object_tag == "tile"
    assert "tagger" not in built.models and "llm" not in built.models
    assert built.model_dump(mode="json") == lower.model_dump(mode="json")


def test_stage1_reads_only_the_resolved_settings() -> None:
    """Stage 1 follows `settings.tagger` / `settings.llm`; the stored config is a record only."""
    answer = "crack, scratch"
    with _Server([(200, answer, 0.0)]) as srv:
        asked = PipelineConfig(tagger="none", object_name="bottle", llm="openai:m", llm_base_url=srv.url,
                               llm_decoding="greedy", llm_max_new_tokens=20)
        # the stored config says "no LLM, another object, sampling": none of it may be read
        recorded = asked.model_copy(update={"llm": "none", "llm_base_url": None, "object_name": "tile",
                                            "llm_decoding": "sample", "llm_max_new_tokens": 99})
        settings = resolve(asked).model_copy(update={"record": recorded})
        ctx = build_context(_normal(), settings, None, "paper")
    assert len(srv.requests) == 1 and srv.requests[0]["max_tokens"] == 20 and srv.requests[0]["temperature"] == 0
    assert ctx.object_tag == "bottle" and ctx.llm_raw_answer == answer and ctx.models["llm"]["id"] == "m"
    assert ctx.model_dump(mode="json")["fidelity"]["llm_decoding"] == "greedy"
    assert ctx.config == recorded  # the context still stores the config it was given


def test_load_llm_takes_llm_settings() -> None:
    llm = resolve(PipelineConfig(llm="NONE")).llm
    assert isinstance(llm, LlmSettings) and llm.ref.is_none and load_llm(llm) is None
    sampled = llm_settings(PipelineConfig(seed=7, llm_temperature=0.5))
    assert sampling_for(sampled) == Sampling(0.5, 0.9, 7)  # the seed resolved from --seed
    assert sampling_for(llm_settings(PipelineConfig(seed=7, llm_seed=3))).seed == 3
    assert sampling_for(llm_settings(PipelineConfig(llm_decoding="greedy"))) is None
