"""ModelRef: every model reference parsed once, keywords case-insensitive, malformed ones refused clearly."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from iapas.config import PipelineConfig, build_config
from iapas.errors import SettingsError
from iapas.modelref import ModelRef, RefKind

K = RefKind

# text -> (kind, canonical text, name, checkpoint)
PARSE_TABLE = [
    ("none", K.NONE, "none", "none", ""),
    ("NONE", K.NONE, "none", "none", ""),
    ("  None ", K.NONE, "none", "none", ""),
    ("smollm2", K.SMOLLM2, "smollm2", "smollm2", ""),
    ("SmolLM2", K.SMOLLM2, "smollm2", "smollm2", ""),
    ("openai:gpt-4o-mini", K.OPENAI, "openai:gpt-4o-mini", "gpt-4o-mini", ""),
    ("OpenAI:Llama-3-8B", K.OPENAI, "openai:Llama-3-8B", "Llama-3-8B", ""),  # the server's model name keeps its case
    ("OPENAI: org/model ", K.OPENAI, "openai:org/model", "org/model", ""),
    ("ram", K.RAM, "ram", "ram", ""),
    ("RAM++", K.RAM, "ram++", "ram++", ""),
    ("Ram++:/ckpt/RAM_plus.pth", K.RAM, "ram++:/ckpt/RAM_plus.pth", "ram++", "/ckpt/RAM_plus.pth"),
    ("model.gguf", K.GGUF, "model.gguf", "model.gguf", ""),
    ("/m/SmolLM2.Q4_1.GGUF", K.GGUF, "/m/SmolLM2.Q4_1.GGUF", "/m/SmolLM2.Q4_1.GGUF", ""),
    ("/abs/clip", K.LOCAL, "/abs/clip", "/abs/clip", ""),
    ("./clip", K.LOCAL, "./clip", "./clip", ""),
    ("../clip", K.LOCAL, "../clip", "../clip", ""),
    ("~/models/sam", K.LOCAL, "~/models/sam", "~/models/sam", ""),
    ("models/org/name", K.LOCAL, "models/org/name", "models/org/name", ""),
    ("C:\\models\\sam", K.LOCAL, "C:\\models\\sam", "C:\\models\\sam", ""),
    ("IDEA-Research/grounding-dino-tiny", K.HUB, "IDEA-Research/grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny", ""),
    ("Nonesuch/None", K.HUB, "Nonesuch/None", "Nonesuch/None", ""),  # only the whole word is a keyword
    ("ramen/clip", K.HUB, "ramen/clip", "ramen/clip", ""),
    ("openai", K.HUB, "openai", "openai", ""),  # no colon: a (bare) hub id
]


@pytest.mark.parametrize(("text", "kind", "canonical", "name", "checkpoint"), PARSE_TABLE)
def test_parse_table(text: str, kind: RefKind, canonical: str, name: str, checkpoint: str) -> None:
    ref = ModelRef.parse(text)
    assert (ref.kind, ref.text, ref.name, ref.checkpoint) == (kind, canonical, name, checkpoint)
    assert str(ref) == canonical
    assert ModelRef.parse(canonical) == ref  # the canonical string parses to the same reference


@pytest.mark.parametrize(("text", "message"), [
    ("", "cannot be empty"),
    ("   ", "cannot be empty"),
    ("openai:", "names no model"),
    ("OpenAI:   ", "names no model"),
    ("ram++:", "names no checkpoint"),
])
def test_malformed_references_are_settings_errors(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        ModelRef.parse(text)


@pytest.mark.parametrize(("text", "role"), [
    ("smollm2", "tagger"), ("openai:m", "detector"), ("x.gguf", "segmenter"), ("RAM", "llm"), ("ram++", "detector"),
])
def test_role_refuses_kinds_it_cannot_use(text: str, role: str) -> None:
    with pytest.raises(SettingsError, match=f"which the {role} cannot use"):
        ModelRef.parse(text, role)


def test_role_accepts_its_kinds() -> None:
    assert ModelRef.parse("NONE", "llm").is_none and ModelRef.parse("None", "tagger").is_none
    assert ModelRef.parse("ram++", "tagger").kind is K.RAM
    assert ModelRef.parse("Smollm2", "llm").kind is K.SMOLLM2
    assert ModelRef.parse("none", "detector").is_none  # allowed in settings; preflight refuses it for paper


def test_existing_path_of_a_hub_like_relative_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ref = ModelRef.parse("org/clip")
    assert ref.kind is K.HUB and ref.existing_path() is None
    (tmp_path / "org" / "clip").mkdir(parents=True)
    assert ref.existing_path() == Path("org/clip")  # an existing relative folder wins when loading, as before
    assert ModelRef.parse("none").existing_path() is None and not ModelRef.parse("openai:m").loads_weights


# ---------------------------------------------------------------- settings keep a canonical string


def test_settings_hold_the_canonical_string() -> None:
    cfg = PipelineConfig(llm="NONE", tagger="None", object_name="tile", detector=" org/det ")
    assert (cfg.llm, cfg.tagger, cfg.detector) == ("none", "none", "org/det")
    assert cfg.llm_ref.is_none and cfg.tagger_ref.is_none and cfg.detector_ref.kind is K.HUB
    dumped = json.loads(cfg.model_dump_json())
    assert dumped["llm"] == "none" and dumped["tagger"] == "none"  # still plain strings on disk
    assert PipelineConfig(llm="OpenAI:m").llm == "openai:m"


def test_config_file_keywords_any_case(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("llm: NONE\ntagger: Ram++\n", encoding="utf-8")
    cfg = build_config(path)
    assert cfg.llm == "none" and cfg.tagger == "ram++" and cfg.tagger_ref.kind is K.RAM


@pytest.mark.parametrize(("field", "value", "message"), [
    ("llm", "openai:", "names no model"),
    ("tagger", "smollm2", "which the tagger cannot use"),
    ("llm", " ", "cannot be empty"),
])
def test_malformed_settings_fail_before_anything_loads(field: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as err:
        build_config(**{field: value})
    assert f"{field} (--{field})" in str(err.value)


def test_llm_server_model() -> None:
    assert PipelineConfig(llm="OpenAI:m").llm_server_model == "m"
    assert PipelineConfig(llm="org/chat", llm_base_url="http://127.0.0.1:1/v1").llm_server_model == "org/chat"
    assert PipelineConfig(llm="NONE", llm_base_url="http://127.0.0.1:1/v1").llm_server_model is None
    assert PipelineConfig(llm="org/chat").llm_server_model is None
