"""Settings of a run, validated by pydantic; loaded from YAML/TOML and overridden by CLI flags.

Defaults are the paper's (r = 10 normal images, seed 111, thresholds 0.2 objects / 0.1 textures,
NMS IoU 0.5, size threshold 0.8). Invalid values are rejected here, before any model loads.
"""
from __future__ import annotations

import reprlib
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, ValidationInfo, field_serializer,
    field_validator, model_serializer,
)

from iapas.errors import SettingsError
from iapas.io.http import redact_url
from iapas.modelref import ModelRef, RefKind

PROFILE_NAME = r"^[a-z][a-z0-9_\-]{0,63}$"  # a registered profile's name (iapas.profiles.registry checks it exists)
Kind = Literal["object", "texture"]
ObjectTagRule = Literal["official", "match"]
LlmPrompt = Literal["official", "expert"]
LlmDecoding = Literal["sample", "greedy"]
LlmParse = Literal["official", "iapas"]
TexturePreset = Literal["paper", "per-category"]
ThresholdSource = Literal["paper", "official-code"]
OFFICIAL_CODE_THRESHOLD = 0.1  # box and text threshold of the official scripts' defaults, on every dataset

# ranges shared by a config field and the settings stored in contexts (declared once, read by both)
FEATURE_SIZE_RANGE: dict[str, Any] = {"ge": 64, "le": 2048}
SEGMENT_SIZE_RANGE: dict[str, Any] = {"ge": 32, "le": 1024}
# Offline maps: the share of the map's peak under which pixels below the calibrated floor keep their order
# (stages.calibration.calibrated); 0 = every such pixel is exactly 0.
FLOOR_TRACE = 1e-3
FLOOR_TRACE_RANGE: dict[str, Any] = {"ge": 0.0, "le": 0.01}
# Fields added after contexts were first written byte for byte (tests/fixtures/base_contexts): written only when set,
# so an older context saves as it was read.
LATER_CONFIG_FIELDS = frozenset({"floor_trace"})


def without_unset_later_fields(model: BaseModel, dumped: dict[str, Any], later: frozenset[str]) -> dict[str, Any]:
    """`dumped` (the model's JSON) without the fields of `later` the model was not given: a record read from an
    older file is written back as it was."""
    return {k: v for k, v in dumped.items() if k not in later or k in model.model_fields_set}
ZERO_SHOT_RANGES: dict[str, dict[str, Any]] = {"references": {"ge": 1, "le": 1024}, "keep": {"gt": 0.0, "le": 1.0},
                                                "chunk": {"ge": 2, "le": 100000}}
DEFAULT_WORKING_SIZE = 112  # short side (px) at which the offline refinement segments an image
DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
DEFAULT_SEGMENTER = "facebook/sam-vit-huge"
DEFAULT_TAGGER = "openai/clip-vit-base-patch32"
DEFAULT_LLM = "meta-llama/Meta-Llama-3-8B-Instruct"
FIXED_PROMPTS = ("abnormal", "defect")
# the official "base" model's and prompt ablation's whole prompt: ONE Grounding DINO phrase ("defect, abnormal.")
BASE_CAPTION = "defect, abnormal"
RUNTIME_FIELDS = ("threads",)  # settings that change speed only, never a result
# fields older versions accepted, with why they went: a file that still sets one gets this message
REMOVED_FIELDS = {
    "batch_size": "it was never read (Stage 2 takes one image at a time; for speed use --threads, "
                  "or --engine ray with --ray-actors)",
}
MAX_CONFIG_BYTES = 1 << 20  # a settings file is a few hundred bytes; more is a mistake or an attack
MAX_QUOTE_CHARS = 200  # how much of a user's value an error message repeats


class PipelineConfig(BaseModel):
    """Every setting of Stage 1 and Stage 2; each field has a CLI flag of the same name (`--no-filter` sets
    use_filter; cli/options.py). `None` means "the preset of --kind": iapas.settings.resolve fills it in,
    once, from iapas.settings.KIND_PRESETS / KIND_THRESHOLDS."""

    # allow_inf_nan=False: `.inf` / `.nan` in a file would pass ge/gt bounds and break sockets or thresholds
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    profile: str | None = Field(None, pattern=PROFILE_NAME,
                                description="a registered profile (paper, offline, fused, ...); None = auto (offline "
                                            "without hub weights)")
    # Stage 1
    num_normal: int = Field(10, ge=1, description="r: normal images sampled for Stage 1")
    seed: int = Field(111, description="seed of the normal-image sample")
    tagger: str = DEFAULT_TAGGER  # model id, local dir, 'ram', 'ram++[:ckpt]' or 'none' (iapas.modelref.ModelRef)
    object_name: str | None = Field(None, description="object tag given by the user (with tagger none)")
    llm: str = DEFAULT_LLM  # model id, local dir, .gguf file, 'smollm2', 'openai:<model>', or 'none' (ModelRef)
    llm_base_url: str | None = None  # OpenAI-compatible server; key from $OPENAI_API_KEY / $IAPAS_LLM_API_KEY
    llm_allow_insecure_http: bool = Field(False, description="allow sending the API key over plain http to a non-loopback host")
    llm_timeout: float = Field(60.0, gt=0)
    llm_retries: int = Field(2, ge=0)
    llm_max_new_tokens: int = Field(512, ge=8, description="official code: 512")
    baseline: bool = False  # paper's "base": the single caption "defect, abnormal", no size filter
    # Stage 1 fidelity switches: the defaults are the official code's (docs/fidelity.md); the others are iapas's own
    object_tag_rule: ObjectTagRule = Field(
        "official", description="official: each normal image grounded with its own tags, top phrase as it comes; "
        "match: all tags on all images, phrase mapped back to one tag"
    )
    llm_prompt: LlmPrompt = Field("official", description="official: the paper's system + user messages; expert: iapas's template")
    llm_decoding: LlmDecoding = Field("sample", description="sample: temperature / top_p, seeded; greedy: temperature 0")
    llm_temperature: float = Field(0.6, gt=0.0, le=2.0, description="sampling temperature (official 0.6)")
    llm_top_p: float = Field(0.9, gt=0.0, le=1.0, description="nucleus sampling top_p (official 0.9)")
    llm_seed: int | None = Field(None, description="seed of the LLM sampling; None = --seed")
    llm_parse: LlmParse = Field("official", description="official: clean_string rules; iapas: robust phrase parser")
    max_phrases: int | None = Field(None, ge=1, description="cap on the parsed LLM phrases; None = no cap (official)")
    # Stage 2
    detector: str = DEFAULT_DETECTOR
    segmenter: str = DEFAULT_SEGMENTER
    kind: Kind | None = Field(None, description="object or texture; None = chosen from the normal images (iapas.stages.kind)")
    thresholds: ThresholdSource = Field(
        "paper", description="paper: box / text thresholds 0.2 objects, 0.1 textures (the paper's text); official-code: "
        "0.1 / 0.1 everywhere (the official scripts' defaults)"
    )
    box_threshold: float | None = Field(None, ge=0.0, le=1.0, description="None = preset of --kind")
    text_threshold: float | None = Field(None, ge=0.0, le=1.0, description="None = preset of --kind")
    nms_iou: float = Field(0.5, ge=0.0, le=1.0)
    size_threshold: float = Field(0.8, gt=0.0, le=1.0)
    use_filter: bool = True
    drop_object_boxes: bool = Field(False, description="drop anomaly boxes labelled with the object tag (iapas); official keeps them")
    texture_preset: TexturePreset = Field(
        "paper", description="paper: Table 1's dataset presets (all MVTec-AD at 0.2); per-category: MVTec's 5 textures at 0.1"
    )
    # offline / fused profile
    backbone: Literal["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"] = "efficientnet-lite0"
    feature_size: int | None = Field(None, **FEATURE_SIZE_RANGE, description="short side fed to the backbone; None = preset of --kind (iapas.settings.KIND_PRESETS)")
    reference_stages: list[int] | None = Field(
        None, description="backbone stages of the reference features (0-6; 2-3 = stride 8/16, 5-6 = stride 32); None = preset of --kind"
    )
    fine_stages: list[int] | None = Field(
        None, description="a second, fine-scale bank of these stages whose calibrated map is added to the deep one "
        "(fine textures, thin lines); [] = off; None = preset of --kind (textures: 2,3)"
    )
    refine: Literal["none", "segments"] | None = Field(
        None, description="segments: average the map inside image segments (sharper outlines on textures); None = preset of --kind"
    )
    segment_size: int = Field(DEFAULT_WORKING_SIZE, **SEGMENT_SIZE_RANGE, description="short side at which images are segmented for refine")
    floor_trace: float = Field(FLOOR_TRACE, **FLOOR_TRACE_RANGE,
                               description="offline: below the floor a map keeps its distances' order under this share "
                                           "of its peak (ranking figures; no decision changes); 0 = exactly 0")
    position_reference: Literal["auto", "on", "off"] | None = Field(
        None, description="compare each patch with normal patches at its own place (aligned objects): auto = decided "
                          "on the normal images; None = preset of --kind")
    zero_shot_references: int = Field(24, **ZERO_SHOT_RANGES["references"], description="zero-shot: other images of the batch each image is scored against")
    zero_shot_keep: float = Field(0.3, **ZERO_SHOT_RANGES["keep"], description="zero-shot: share of the closest references averaged per patch")
    zero_shot_chunk: int = Field(128, **ZERO_SHOT_RANGES["chunk"], description="zero-shot: images mutually scored together (bounds memory)")
    mask_percentile: float = Field(99.5, gt=50.0, le=100.0, description="percentile of normal scores for the mask threshold")
    target_frr: float = Field(0.02, gt=0.0, lt=0.5, description="offline: false-reject rate of good parts the calibrated verdict aims at")
    # runtime
    device: str = "auto"  # auto, cpu, cuda, mps
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float32 for the detector and SAM (as the official code), half precision for a "
        "local LLM on a GPU"
    )
    threads: int | None = Field(
        None, ge=1, le=1024, description="threads of torch, OpenCV, BLAS and the segment pool; None = CPUs this process may use"
    )

    @field_validator("tagger", "llm", "detector", "segmenter")
    @classmethod
    def _model_ref(cls, v: str, info: ValidationInfo) -> str:
        """Parse once here so a malformed reference fails before anything loads; keep the canonical string
        ('NONE' -> 'none', 'OpenAI:m' -> 'openai:m') so every later reader sees one spelling."""
        try:
            return ModelRef.parse(v, str(info.field_name)).text
        except SettingsError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("llm_base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        import urllib.parse

        if v is None:
            return v
        try:
            parts = urllib.parse.urlsplit(v.strip())
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("must be an http:// or https:// URL with a host, e.g. http://localhost:8000/v1")
        return v.strip()

    @field_serializer("llm_base_url")
    def _hide_url_password(self, v: str | None) -> str | None:
        """A `user:pass@` never reaches context.json, summaries or digests."""
        return redact_url(v)

    @model_serializer(mode="wrap")
    def _later_fields_when_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Fields added later (LATER_CONFIG_FIELDS) are written only when set: an older context saves unchanged."""
        return without_unset_later_fields(self, handler(self), LATER_CONFIG_FIELDS)

    @property
    def detector_ref(self) -> ModelRef:
        return ModelRef.parse(self.detector, "detector")

    @property
    def segmenter_ref(self) -> ModelRef:
        return ModelRef.parse(self.segmenter, "segmenter")

    @property
    def tagger_ref(self) -> ModelRef:
        return ModelRef.parse(self.tagger, "tagger")

    @property
    def llm_ref(self) -> ModelRef:
        return ModelRef.parse(self.llm, "llm")

    @property
    def llm_server_model(self) -> str | None:
        """The model name sent to the OpenAI-compatible server, or None when the LLM runs here (or is 'none').

        'openai:MODEL' always means the server; with llm_base_url set, any other reference is sent as the name.
        """
        ref = self.llm_ref
        if ref.kind is RefKind.OPENAI:
            return ref.name
        if self.llm_base_url and not ref.is_none:
            return ref.text
        return None


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (`*name`): a settings file never needs them, and nested aliases
    expand exponentially ("billion laughs") in memory."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in config files", mark)
        return super().compose_node(parent, index)


def clip(text: str, limit: int = MAX_QUOTE_CHARS) -> str:
    """`text` cut to `limit` characters (with '...'), for messages that may hold a user's input."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote(value: Any, limit: int = MAX_QUOTE_CHARS) -> str:
    """repr of a user's value for an error message, bounded in length (and in work for nested values)."""
    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlist = r.maxdict = r.maxtuple = r.maxset = 20
    return clip(r.repr(value), limit)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or TOML file into a dict of PipelineConfig fields (at most 1 MiB, no YAML aliases)."""
    p = Path(path)
    if not p.is_file():
        raise SettingsError(f"config file {p} does not exist")
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise SettingsError(f"config file {p} cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise SettingsError(f"config file {p} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a settings file is much smaller")
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {p} cannot be parsed: {clip(str(exc), 400)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {p} must hold a mapping of settings, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _allowed_range(name: str) -> str:
    """'; allowed: [0, 1]' style text from a numeric field's bounds, so errors show the valid values."""
    info = PipelineConfig.model_fields.get(name)
    if info is None:
        return ""
    lo = hi = None
    lo_open = hi_open = False
    for m in info.metadata:
        for attr, is_lo, is_open in (("ge", True, False), ("gt", True, True), ("le", False, False), ("lt", False, True)):
            value = getattr(m, attr, None)
            if value is not None:
                if is_lo:
                    lo, lo_open = value, is_open
                else:
                    hi, hi_open = value, is_open
    if lo is None and hi is None:
        return ""
    left = "-inf" if lo is None else f"{lo:g}"
    right = "inf" if hi is None else f"{hi:g}"
    return f"; allowed: {'(' if lo_open or lo is None else '['}{left}, {right}{')' if hi_open or hi is None else ']'}"


def build_config(file: str | Path | None = None, **overrides: Any) -> PipelineConfig:
    """Config from an optional file, then CLI overrides (None values mean 'not given')."""
    data = read_config_file(file) if file else {}
    removed = [k for k in data if k in REMOVED_FIELDS]
    if removed:
        where = f"config file {file}" if file else "the settings"
        raise SettingsError("; ".join(f"{where} sets {k}, which was removed: {REMOVED_FIELDS[k]}; delete that line"
                                      for k in removed))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return PipelineConfig(**data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"]) or "settings"
            allowed = _allowed_range(str(err["loc"][0])) if err["loc"] else ""
            flag = f" (--{where.replace('_', '-')})" if where in PipelineConfig.model_fields else ""
            value = err.get("input")
            if where == "llm_base_url" and isinstance(value, str):
                value = redact_url(value)
            lines.append(f"{where}{flag}: {clip(str(err['msg']))}{allowed} (got {quote(value)})")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None


def settings_digest(config: PipelineConfig, profile: str, **extra: Any) -> str:
    """Short stable hash of everything that changes a prediction; keys result caches for resume."""
    import hashlib
    import json

    from iapas import __version__

    payload = {"config": config.model_dump(mode="json"), "profile": profile, "version": __version__, **extra}
    for runtime_only in RUNTIME_FIELDS:  # they change speed, never a prediction
        payload["config"].pop(runtime_only, None)
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
