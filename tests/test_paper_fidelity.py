"""The paper profile as the official code runs it: official LLM request over HTTP, seeded sampling,
clean_string parsing, the official object-tag rule, RAM preferred over the CLIP stand-in (docs/fidelity.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from iapas.config import DEFAULT_TAGGER, PipelineConfig
from iapas.context import Fidelity
from iapas.io.images import LoadedImage
from iapas.profiles.paper import PaperProfile
from iapas.settings import resolve
from iapas.models import tagger as tagging
from iapas.models.llm import Sampling, TransformersChatLLM, chat_payload
from iapas.stages.llm_answer import parse_official
from iapas.stages.object_tag import choose_object_tag_official
from iapas.evaluation.presets import category_kind
from iapas.stages.prompting import OFFICIAL_SYSTEM_PROMPT, official_messages
from iapas.stages.stage1 import build_context
from iapas.types import Box, Detections
from loopback_http import LoopbackServer, QuietHandler


OFFICIAL_LLM = Path(__file__).parent / "fixtures" / "official_llm"  # the official messages, byte for byte
SYSTEM = (OFFICIAL_LLM / "system.txt").read_bytes().decode("utf-8")
USER = (OFFICIAL_LLM / "user.txt").read_bytes().decode("utf-8").replace("{object_tag}", "{tag}")


class FakeOpenAI(LoopbackServer):
    """A small OpenAI-compatible /v1/chat/completions server on 127.0.0.1 (free port) that records requests."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []  # the raw request bodies, as the server received them
        self.paths: list[str] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                outer.paths.append(self.path)
                body = self.rfile.read(length)
                outer.bodies.append(body)
                outer.requests.append(json.loads(body))
                self.send_json(200, {"choices": [{"message": {"role": "assistant", "content": outer.answer}}]})

        super().__init__(Handler, "/v1")


class MergingDetector:
    """Grounding double: on image i it returns one box labelled with its first two phrases merged, as
    Grounding DINO does when both pass the text threshold, scoring 0.3 + 0.1 i; plus a weaker single-tag box."""

    model_id = "merging-detector"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def detect(self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float) -> Detections:
        raise AssertionError("the official object-tag rule uses detect_raw")

    def detect_raw(self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float) -> Detections:
        self.calls.append(list(phrases))
        i = len(self.calls) - 1
        return Detections.from_boxes([Box((0, 0, 10, 10), phrases[-1], 0.25), Box((1, 1, 9, 9), " ".join(phrases[:2]), 0.3 + 0.1 * i)])


def _normal(n: int = 3) -> list[LoadedImage]:
    rng = np.random.default_rng(11)
    return [
        LoadedImage(path=f"good/{i}.png", rgb=rng.integers(0, 255, (40, 56, 3), dtype=np.uint8), original_size=(56, 40))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tiny.stage1_models import build_tiny_clip

    return str(build_tiny_clip(tmp_path_factory.mktemp("clip")))


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tiny.stage1_models import build_tiny_chat_lm

    return str(build_tiny_chat_lm(tmp_path_factory.mktemp("lm")))


# ---------------------------------------------------------------- must show: Stage 1 against a server


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_stage1_sends_the_official_request_and_builds_the_official_prompt(tiny_clip: str) -> None:
    answer = "crack, scratch of surface, none, hole hole, part chipping, 'dent', word, Discoloration."
    with FakeOpenAI(answer) as srv:
        cfg = PipelineConfig(profile="paper", tagger=tiny_clip, llm="openai:llama-3-8b", llm_base_url=srv.url,
                             device="cpu", seed=111)
        det = MergingDetector()
        ctx = PaperProfile(resolve(cfg), detector=det).fit(_normal())
    # official object-tag rule: each image grounded with its own tags, top phrase kept as it comes
    assert len(det.calls) == 3 and all(1 <= len(c) <= 5 for c in det.calls)
    assert ctx.object_tag == " ".join(det.calls[2][:2])  # last image scores highest (0.5)
    # the request: official messages for that object tag, sampled with temperature 0.6, top_p 0.9, seeded
    assert srv.paths == ["/v1/chat/completions"] and len(srv.requests) == 1
    body = srv.requests[0]
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER.format(tag=ctx.object_tag)},
    ]
    assert body["temperature"] == 0.6 and body["top_p"] == 0.9 and body["seed"] == 111
    assert body["max_tokens"] == 512 and body["model"] == "llama-3-8b"
    # parsed by the clean_string rules, then + "abnormal" + "defect" + object tag
    words = ["crack", "scratch surface", "hole", "chipping", "'dent'", "discoloration"]  # quotes kept, as official
    assert ctx.defect_words == words
    assert ctx.final_prompt == [*words, "abnormal", "defect", ctx.object_tag]
    assert ctx.llm_raw_answer == answer and ctx.llm_request == USER.format(tag=ctx.object_tag)
    fidelity = ctx.model_dump(mode="json")["fidelity"]
    assert fidelity["llm_prompt"] == "official" and fidelity["llm_parse"] == "official"
    assert fidelity["llm_decoding"] == "sample (temperature 0.6, top_p 0.9, seed 111)"
    assert fidelity["object_tag_rule"] == "official" and fidelity["object_boxes"] == "kept"


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_llm_seed_and_greedy_reach_the_server() -> None:
    with FakeOpenAI("crack") as srv:
        for extra in ({"llm_seed": 7}, {"llm_decoding": "greedy"}):
            cfg = PipelineConfig(tagger="none", object_name="gear", llm="openai:m", llm_base_url=srv.url, **extra)
            build_context(_normal(1), resolve(cfg), None, "paper")
    assert srv.requests[0]["seed"] == 7 and srv.requests[0]["top_p"] == 0.9
    assert srv.requests[1]["temperature"] == 0 and "top_p" not in srv.requests[1]
    assert chat_payload("m", [], 9, Sampling(0.5, 0.8, 3)) == {
        "model": "m", "messages": [], "max_tokens": 9, "temperature": 0.5, "top_p": 0.8, "seed": 3}


# ---------------------------------------------------------------- must show: seeded transformers sampling


def test_seeded_sampling_gives_the_same_context_twice(tiny_lm: str, tmp_path: Path) -> None:
    import torch

    cfg = PipelineConfig(tagger="none", object_name="gear", llm=tiny_lm, device="cpu", llm_max_new_tokens=24)
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    a = build_context(_normal(1), resolve(cfg), None, "paper")
    assert torch.equal(torch.rand(3), expected_next), "the seeded sampling leaves the global RNG alone"
    b = build_context(_normal(1), resolve(cfg), None, "paper")
    assert a.llm_raw_answer and a.llm_raw_answer == b.llm_raw_answer
    assert a.save(tmp_path / "a.json").read_text() == b.save(tmp_path / "b.json").read_text()
    backend = TransformersChatLLM(tiny_lm, "cpu")
    msgs = official_messages("gear")
    answers = {backend.chat(msgs, 24, Sampling(seed=s)) for s in range(4)}
    assert len(answers) > 1, "it really samples: other seeds give other answers"
    assert backend.chat(msgs, 24, Sampling(seed=111)) == a.llm_raw_answer


# ---------------------------------------------------------------- parsing and object-tag rules


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("crack, dent, scratch", ["crack", "dent", "scratch"]),
        ("Crack, crack, crack crack", ["crack"]),  # dedupe across and inside phrases, lower case
        ("piece of glass, missing part, none, word", ["piece glass", "missing"]),  # word, none, of, part dropped
        ("sword, nonetheless", ["sword", "nonetheless"]),  # whole words only (the official code cut 'sword' to 's')
        ("a, b,, , c.", ["a", "b", "c"]),  # empty phrases dropped, dots removed
        ("crack.dent, e.g. hole", ["crackdent", "eg hole"]),  # a dot is deleted, not turned into a space
        ("'dent', *burr*, ''pit'', (rust)", ["'dent'", "*burr*", "pit", "(rust)"]),  # only '' and "" are deleted
        ("Of course, Part, Crack crack", ["of course", "part", "crack crack"]),  # case-sensitive, as official
        ("", []),
    ],
)
def test_parse_official(answer: str, expected: list[str]) -> None:
    assert parse_official(answer) == expected


def test_parse_official_has_no_cap_unless_asked() -> None:
    answer = ", ".join(f"defect{chr(97 + i)}" for i in range(20))
    assert len(parse_official(answer)) == 20 and len(parse_official(answer, max_phrases=15)) == 15


def test_official_object_tag_rule_keeps_the_merged_phrase_and_falls_back() -> None:
    det = MergingDetector()
    imgs = [np.zeros((8, 8, 3), np.uint8)] * 2
    choice = choose_object_tag_official([["metal", "tile", "gear"], ["gear", "metal"]], imgs, det, 0.2, 0.2)
    assert det.calls == [["metal", "tile", "gear"], ["gear", "metal"]]  # each image with its own tags
    assert choice.tag == "gear metal" and choice.scores == {"metal tile": 0.3, "gear metal": 0.4}  # top box per image
    none = choose_object_tag_official([[], []], imgs, det, 0.2, 0.2, fallback=["spring"])
    assert none.tag == "spring" and none.warnings
    assert choose_object_tag_official([[], []], imgs, det, 0.2, 0.2).tag is None


def test_official_messages_are_byte_for_byte() -> None:
    assert official_messages("metal tile") == [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": USER.format(tag="metal tile")}]
    assert OFFICIAL_SYSTEM_PROMPT == SYSTEM
    user = official_messages("gear")[1]["content"]
    assert "gear. \n" + " " * 20 + "Please" in user  # the official line break and source indentation
    assert user.encode("utf-8") == (OFFICIAL_LLM / "user.txt").read_bytes().replace(b"{object_tag}", b"gear")


def test_the_server_receives_the_official_messages_byte_for_byte() -> None:
    with FakeOpenAI("crack") as srv:
        cfg = PipelineConfig(tagger="none", object_name="magnetic tile", llm="openai:m", llm_base_url=srv.url)
        build_context(_normal(1), resolve(cfg), None, "paper")
        raw = srv.bodies[0]
    sent = json.loads(raw)["messages"]
    fixture = [(OFFICIAL_LLM / "system.txt").read_bytes(),
               (OFFICIAL_LLM / "user.txt").read_bytes().replace(b"{object_tag}", b"magnetic tile")]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert [m["content"].encode("utf-8") for m in sent] == fixture
    assert b"magnetic tile. \\n" + b" " * 20 + b"Please" in raw  # on the wire: JSON-escaped line break, 20 spaces


def test_paper_preset_detects_all_of_mvtec_as_objects() -> None:
    assert category_kind("mvtec", "texture") == "object"
    assert category_kind("mvtec", "texture", "per-category") == "texture"
    assert category_kind("mtd", "texture") == "texture" and category_kind("dtd-synthetic", "texture") == "texture"
    assert category_kind("mpdd", "object") == "object"


# ---------------------------------------------------------------- RAM preferred, CLIP stand-in flagged


RAM_MODELS = '''
import torch


class _Ram(torch.nn.Module):
    def __init__(self, pretrained, image_size, vit):
        super().__init__()
        self.args = (pretrained, image_size, vit)
        self.inputs = []

    def generate_tag(self, x):
        assert tuple(x.shape) == (1, 3, 384, 384) and x.dtype == torch.float32
        self.inputs.append(float(x.mean()))
        return ["gear | close-up | metal | number | scratch"], ["ignored"]


BUILT = []


def ram(pretrained, image_size, vit):
    BUILT.append(_Ram(pretrained, image_size, vit))
    return BUILT[-1]


ram_plus = ram
'''


@pytest.fixture()
def ram_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_model_cache: None) -> Path:
    """A stand-in `ram` package on sys.path with the Recognize Anything API iapas calls, and a checkpoint file."""
    pkg = tmp_path / "site" / "ram"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "models.py").write_text(RAM_MODELS, encoding="utf-8")
    ckpt = tmp_path / "ram_swin_large_14m.pth"
    ckpt.write_bytes(b"weights")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("IAPAS_RAM_CHECKPOINT", str(ckpt))
    for name in ("ram", "ram.models"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield ckpt
    for name in ("ram", "ram.models"):
        sys.modules.pop(name, None)


def test_ram_is_preferred_when_installed(ram_package: Path) -> None:
    assert tagging.ram_installed()
    assert tagging.preferred_tagger(DEFAULT_TAGGER) == "ram"
    assert tagging.preferred_tagger("some/clip") == "some/clip"  # an explicit choice is kept
    cfg = PipelineConfig(profile="paper", llm="none", device="cpu")  # default tagger
    det = MergingDetector()
    ctx = build_context(_normal(2), resolve(cfg), det, "paper")
    import ram.models

    built = ram.models.BUILT[-1]
    assert built.args == (str(ram_package), 384, "swin_l") and len(built.inputs) == 2
    assert ctx.models["tagger"] == {"id": "ram", "revision": ram_package.name}
    assert ctx.tags == ["gear", "metal"] and set(ctx.removed_tags) == {"close-up", "number", "scratch"}
    assert det.calls == [["gear", "metal"], ["gear", "metal"]] and ctx.object_tag == "gear metal"
    assert ctx.model_dump(mode="json")["fidelity"]["tagger"] == "ram (as in the paper)"
    assert not any("deviates" in w for w in ctx.warnings)


def test_without_ram_the_default_stays_clip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tagging, "ram_installed", lambda: False)
    assert tagging.preferred_tagger(DEFAULT_TAGGER) == DEFAULT_TAGGER


def test_clip_stand_in_is_flagged_in_context_and_predictions(tiny_clip: str) -> None:
    from fake_segmenter import RectSegmenter
    from test_paper_profile import ScriptedDetector

    cfg = PipelineConfig(profile="paper", tagger=tiny_clip, llm="none", device="cpu")
    ctx = build_context(_normal(2), resolve(cfg), MergingDetector(), "paper")
    assert any("deviates from the paper" in w for w in ctx.warnings)
    det = ScriptedDetector([], [Box((2, 2, 8, 8), "defect", 0.5)])
    pred = PaperProfile(resolve(cfg), detector=det, segmenter=RectSegmenter()).predict(_normal(1)[0], ctx)
    assert any("deviates from the paper" in n for n in pred.to_json()["notes"])
    clean = ctx.model_copy(update={"warnings": []})
    clean.fidelity = Fidelity(tagger="ram (as in the paper)")
    notes = PaperProfile(resolve(cfg), detector=det, segmenter=RectSegmenter()).predict(_normal(1)[0], clean).notes
    assert notes and not any("deviates" in n for n in notes)


# ---------------------------------------------------------------- the named options through the CLI


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_named_options_reach_the_context_through_iapas_prompts(tmp_path: Path, tiny_gdino: Path, tiny_sam: Path) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from cli_apps import command_app
    from iapas.cli import run as run_cmd

    normal = tmp_path / "good"
    normal.mkdir()
    for i, im in enumerate(_normal(2)):
        Image.fromarray(im.rgb).save(normal / f"{i}.png")
    answer = "Sure! Here are defects:\n1. Crack\n2. Dent\n3. Burr"
    with FakeOpenAI(answer) as srv:
        args = ["prompts", "--normal", normal, "--out", tmp_path / "ctx.json", "--profile", "paper",
                "--detector", tiny_gdino, "--segmenter", tiny_sam, "--tagger", "none", "--object", "gear",
                "--llm", "openai:m", "--llm-base-url", srv.url, "--llm-prompt", "expert", "--llm-decoding", "greedy",
                "--llm-parse", "iapas", "--max-phrases", "2", "--drop-object-boxes", "--texture-preset", "per-category"]
        result = CliRunner().invoke(command_app(run_cmd), [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ctx = json.loads((tmp_path / "ctx.json").read_text(encoding="utf-8"))
    assert srv.requests[0]["temperature"] == 0 and "top_p" not in srv.requests[0]
    assert srv.requests[0]["messages"][0]["content"] != SYSTEM  # the expert template
    assert ctx["defect_words"] == ["crack", "dent"] and ctx["final_prompt"] == ["crack", "dent", "abnormal", "defect", "gear"]
    assert ctx["fidelity"] == {
        "object_tag_rule": "official", "llm_prompt": "expert", "llm_decoding": "greedy", "llm_max_new_tokens": 512,
        "llm_parse": "iapas", "max_phrases": 2, "object_boxes": "dropped", "size_filter": True,
        "texture_preset": "per-category", "tagger": "none", "precision": "float32", "thresholds": "paper",
    }
    assert ctx["config"]["drop_object_boxes"] is True and ctx["config"]["texture_preset"] == "per-category"


def test_preflight_does_not_ask_for_clip_when_ram_is_preferred(ram_package: Path) -> None:
    from iapas.preflight import model_roles

    assert "--tagger" not in model_roles(PipelineConfig(profile="paper"), "paper")
    assert model_roles(PipelineConfig(profile="paper", tagger="org/clip"), "paper")["--tagger"].text == "org/clip"


# ---------------------------------------------------------------- precision, stop tokens, clipping, base row


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_precision_default_is_float32_and_another_dtype_is_recorded(tiny_gdino: Path, tiny_sam: Path,
                                                                    fresh_model_cache: None) -> None:
    import torch

    from iapas.models.device import resolve_dtype

    base = dict(profile="paper", detector=str(tiny_gdino), segmenter=str(tiny_sam), tagger="none", object_name="gear",
                llm="none", device="cpu")
    settings = resolve(PipelineConfig(**base))
    assert settings.detector.dtype == settings.segmenter.dtype == "float32"  # 'auto' no longer means bf16 on a GPU
    assert resolve_dtype(settings.detector.dtype, "cuda") is torch.float32
    image = _normal(1)[0]
    for dtype, expected in ((None, torch.float32), ("bfloat16", torch.bfloat16)):
        cfg = PipelineConfig(**base, **({"dtype": dtype} if dtype else {}))
        profile = PaperProfile(resolve(cfg))
        ctx = profile.fit([image])
        pred = profile.predict(image, ctx)
        assert profile.detector.model.dtype == expected and profile.segmenter.model.dtype == expected
        name = str(expected).replace("torch.", "")
        assert ctx.models["detector"]["dtype"] == name and ctx.model_dump(mode="json")["fidelity"]["precision"] == name
        precision_notes = [n for n in pred.notes if "runs it in float32" in n]
        assert len(precision_notes) == (2 if dtype else 0), pred.notes


def _llama3_chat_lm(folder: Path) -> Path:
    """A tiny Llama causal LM with a Llama-3-style tokenizer: <|eot_id|> ends a turn, eos is <|end_of_text|>,
    and (like the first Llama-3-8B-Instruct release) the generation config stops at eos only. Its output
    layer is zero, so every logit ties and greedy decoding emits token 0, which is <|eot_id|>."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tiny.stage1_models import CHAT_TEMPLATE, LM_WORDS, _word_tokenizer

    specials = ["<|eot_id|>", "<pad>", "<unk>", "<|end_of_text|>", "<|im_start|>"]
    template = CHAT_TEMPLATE.replace("<|im_end|>", "<|eot_id|>")
    tokenizer, vocab = _word_tokenizer(LM_WORDS, specials, template)
    tokenizer.eos_token = "<|end_of_text|>"
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=1, eos_token_id=3)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    model.generation_config.eos_token_id = 3
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_llama3_generation_stops_at_the_official_stop_tokens(tmp_path: Path, tiny_lm: str) -> None:
    from iapas.models.llm import stop_token_ids

    backend = TransformersChatLLM(str(_llama3_chat_lm(tmp_path / "llama3")), "cpu")
    calls: list[tuple[Any, int]] = []
    generate = backend.model.generate

    def spy(**kwargs: Any) -> Any:
        out = generate(**kwargs)
        calls.append((kwargs.get("eos_token_id"), out.shape[1] - kwargs["input_ids"].shape[1]))
        return out

    backend.model.generate = spy
    assert stop_token_ids(backend.tokenizer) == [3, 0]  # [eos, <|eot_id|>], as the official terminators
    backend.chat(official_messages("gear"), 12, None)
    assert calls == [([3, 0], 1)]  # stopped at the first <|eot_id|>
    enc = backend.tokenizer.apply_chat_template(official_messages("gear"), add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)
    unstopped = generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=1)
    assert unstopped.shape[1] - enc["input_ids"].shape[1] == 12  # the generation config alone runs on
    other = TransformersChatLLM(tiny_lm, "cpu")
    assert stop_token_ids(other.tokenizer) is None  # not a Llama-3 tokenizer: its own generation config


def test_boxes_are_clipped_only_before_sam(tiny_gdino: Path) -> None:
    """Official order: NMS and the size filter on the detector's boxes, clipping right before SAM."""
    import torch

    from fake_segmenter import RectSegmenter
    from iapas.models.detector import caption, load_detector, token_spans
    from test_paper_profile import TAG, ScriptedDetector

    det = load_detector(str(tiny_gdino), "cpu")
    text, char_spans = caption(["crack"])
    enc = det.processor.tokenizer(text, return_offsets_mapping=True)
    spans = token_spans([tuple(o) for o in enc["offset_mapping"]], char_spans)
    logits = torch.full((1, 1, 16), -10.0)
    logits[0, :, len(enc["input_ids"]):] = float("-inf")
    logits[0, 0, 1] = 5.0
    boxes = torch.tensor([[[0.95, 0.5, 0.3, 0.2]]])  # reaches 10% of the width out of the image
    out = det.boxes_from_outputs(SimpleNamespace(logits=logits, pred_boxes=boxes), torch.tensor([enc["input_ids"]]),
                                 spans, ["crack"], 0.3, 0.3, (100, 200))
    assert out.box(0).xyxy == pytest.approx((160.0, 40.0, 220.0, 60.0), abs=1e-3)  # not clipped by the detector

    # image 100 x 50; object box 50 x 50 -> limit 0.8 * 0.5 * 5000 = 2000 px
    obj = [Box((0, 0, 50, 50), TAG, 0.9)]
    hanging = Box((70, 0, 130, 35), "crack", 0.6)  # 60 x 35 = 2100 px as detected, 30 x 35 = 1050 px inside
    inside = Box((10, 10, 20, 20), "dent", 0.5)
    cfg = PipelineConfig(profile="paper", tagger="none", object_name=TAG, llm="none", device="cpu")
    from iapas.context import Context
    from iapas.settings import thresholds

    ctx = Context(profile="paper", config=cfg, object_tag=TAG, final_prompt=["crack", "dent", TAG],
                  thresholds=thresholds(cfg))
    seg = RectSegmenter()
    seen: list[list[tuple[float, ...]]] = []
    segment = seg.segment

    def recording(rgb: np.ndarray, dets: Any) -> np.ndarray:
        seen.append([tuple(b.xyxy) for b in dets])
        return segment(rgb, dets)

    seg.segment = recording  # type: ignore[method-assign]
    image = LoadedImage(path="x.png", rgb=np.zeros((50, 100, 3), np.uint8), original_size=(100, 50))
    pred = PaperProfile(resolve(cfg), detector=ScriptedDetector(obj, [hanging, inside]), segmenter=seg).predict(image, ctx)
    assert [b.phrase for b in pred.boxes] == ["dent"]  # the unclipped area (2100 px) fails the filter
    assert [b.phrase for b in pred.removed_boxes] == ["crack"]
    assert pred.removed_boxes.box(0).xyxy == (70.0, 0.0, 100.0, 35.0)  # outputs show it inside the image
    wide = Box((-20, 0, 40, 50), "dent", 0.5)  # 60 x 50 = 3000 px: passes only without the filter
    nofilter = PaperProfile(resolve(cfg.model_copy(update={"use_filter": False})),
                            detector=ScriptedDetector(obj, [wide]), segmenter=seg).predict(image, ctx)
    assert seen[-1] == [(0.0, 0.0, 40.0, 50.0)] and nofilter.boxes.box(0).xyxy == (0.0, 0.0, 40.0, 50.0)  # SAM: clipped


def test_base_row_sends_the_single_official_caption(tiny_gdino: Path, tiny_sam: Path, fresh_model_cache: None) -> None:
    cfg = PipelineConfig(profile="paper", detector=str(tiny_gdino), segmenter=str(tiny_sam), baseline=True,
                         device="cpu", llm="none")
    profile = PaperProfile(resolve(cfg))
    ctx = profile.fit(_normal(1))
    assert ctx.final_prompt == ["defect, abnormal"] and ctx.object_tag is None
    texts: list[str] = []
    processor = profile.detector.processor

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(processor, name)

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            texts.append(kwargs["text"])
            return processor(*args, **kwargs)

    profile.detector.processor = Recording()
    pred = profile.predict(_normal(1)[0], ctx)
    assert texts == ["defect, abnormal."]  # one caption, one phrase: the official `base` (no object pass)
    assert all(b.phrase == "defect, abnormal" for b in pred.boxes)
    ablation = build_context(_normal(1), resolve(PipelineConfig(tagger="none", object_name="gear", llm="none")), None,
                             "paper")
    assert ablation.final_prompt == ["defect, abnormal"]  # the official prompt ablation's caption too


def test_threshold_source_paper_or_official_code() -> None:
    from iapas.settings import thresholds

    paper = thresholds(PipelineConfig(kind="object"))
    code = thresholds(PipelineConfig(kind="object", thresholds="official-code"))
    assert (paper.box_threshold, paper.text_threshold) == (0.2, 0.2)
    assert (code.box_threshold, code.text_threshold) == (0.1, 0.1)
    assert thresholds(PipelineConfig(kind="texture", thresholds="official-code")).box_threshold == 0.1
    explicit = thresholds(PipelineConfig(kind="object", thresholds="official-code", box_threshold=0.3))
    assert (explicit.box_threshold, explicit.text_threshold) == (0.3, 0.1)
    ctx = build_context(_normal(1), resolve(PipelineConfig(tagger="none", object_name="gear", llm="none",
                                                           thresholds="official-code")), None, "paper")
    assert ctx.thresholds.box_threshold == 0.1 and ctx.model_dump(mode="json")["fidelity"]["thresholds"] == "official-code"
