"""Every component's settings, resolved from a `PipelineConfig` once, here.

A config is resolved into frozen pydantic models by `resolve(config)` and nothing downstream reads the
config again: stages take their own settings object, profiles take a `Settings` in their constructor, and
the context stores the typed results (`Thresholds`, `ReferenceSettings`, `Calibration`). Ranges are declared
once, on the fields (`Field(ge=..., le=...)`): the context checks and the CLI read them from there.

The presets per kind (`KIND_PRESETS`, `KIND_THRESHOLDS`) are the single source of every default that
depends on `--kind`: the config's `None` means "the preset", and `resolve` is where it is filled in.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from iapas.config import (
    DEFAULT_WORKING_SIZE, FEATURE_SIZE_RANGE, FLOOR_TRACE_RANGE, OFFICIAL_CODE_THRESHOLD, SEGMENT_SIZE_RANGE, ZERO_SHOT_RANGES, PipelineConfig,
    without_unset_later_fields,
)
from iapas.errors import SettingsError
from iapas.modelref import ModelRef

# (scale, sigma, min_size) of each Felzenszwalb level of the segment refinement; fine to coarse
DEFAULT_LEVELS: tuple[tuple[float, float, int], ...] = (
    (30.0, 0.8, 20), (60.0, 0.8, 20), (100.0, 0.8, 20), (175.0, 0.8, 20), (250.0, 0.8, 20), (500.0, 3.0, 100),
)
DEFAULT_COMBINE = "geometric"
DEFAULT_SMOOTH = 0.5  # gaussian sigma after pooling, in working pixels
POSITION_RATIO = 0.35  # aligned when at most this share of normal patches match better elsewhere (stages.position)
FLOOR_PERCENTILE = 90.0  # per-image percentile of normal distances below which a pixel scores exactly 0


LATER_REFERENCE_FIELDS = frozenset({"fine_max_bank", "floor_trace"})  # see ReferenceSettings.to_json
# Rows of the fine-scale bank (stages.multiscale): a 2,048-row coreset of the 4-view bank scored as well as its 10%
# coreset (~10,000 rows) on MTD, the families and the synthetic set, for a fifth of the kNN cost per image
# (docs/offline-tuning.md, "Fine scale by default").
FINE_BANK_ROWS = 2048
FROZEN = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
MAX_SEGMENT_LEVELS = 8
BACKBONE_STAGES = (0, 6)  # stages of the packaged backbones, inclusive


class FeaturePreset(BaseModel):
    """The offline features of one kind, chosen on the development suite (docs/offline-tuning.md)."""

    model_config = FROZEN

    stages: tuple[int, ...]
    feature_size: int
    refine: str
    normalize: str
    sigma: float
    augment: tuple[str, ...] = ("auto",)  # views of the normal images in the bank ("auto": while it stays small)
    coreset: float = 1.0  # share of the bank kept by the greedy coreset (at least MIN_CORESET_ROWS)
    position: str = "auto"  # position-aware reference (stages.position): auto (decided on the normals), on, off
    position_combine: str = "position"  # when aligned: "position" only, or its "mean"/"max" with the global bank
    photometric: str = "none"  # per-image brightness normalisation before the backbone (stages.reference.photometric)
    fine_stages: tuple[int, ...] = ()  # a second, fine-scale bank (L2, no refinement) whose calibrated map is combined
    scale_combine: str = "sum"  # how the two calibrated scales are combined (stages.multiscale)


KIND_THRESHOLDS = {"object": 0.2, "texture": 0.1}  # the paper's box / text thresholds per kind
STAGE2_AUTO_DTYPE = "float32"  # --dtype auto for the detector and SAM: the official code runs them in float32

# Features per kind, chosen on the suite mean (docs/offline-tuning.md); config fields that are set win.
# THE source of the feature_size default: the config, the CLI help, ReferenceSettings and the docs refer here.
KIND_PRESETS: dict[str, FeaturePreset] = {
    "object": FeaturePreset(stages=(2, 3), feature_size=320, refine="none", normalize="l2", sigma=4.0, coreset=0.1),
    "texture": FeaturePreset(stages=(5, 6), feature_size=320, refine="segments", normalize="none", sigma=4.0,
                             augment=("none", "hflip", "vflip", "rot180"), coreset=0.1, fine_stages=(2, 3)),
}
# Spread (sd of log image maxima) of normal parts around the leave-one-out median, per kind: the verdict's
# extrapolation beyond ten normal images, chosen on the development suite (docs/offline-tuning.md).
VERDICT_SPREAD = {"object": 0.18, "texture": 0.15}
# A texture's single-scale map (`--fine-stages none`) is narrower: its maxima spread as the first suite chose.
VERDICT_SPREAD_ONE_SCALE_TEXTURE = 0.055


def verdict_spread(kind: str, multiscale: bool) -> float:
    """The verdict's spread for a kind's map: textures' summed deep + fine map (stages.multiscale) spreads its
    normal maxima wider than one scale does (docs/offline-tuning.md, "Fine scale by default")."""
    if kind == "texture" and not multiscale:
        return VERDICT_SPREAD_ONE_SCALE_TEXTURE
    return VERDICT_SPREAD[kind]
# ends the verdict rule of a threshold the user gave (verdict.with_verdict_threshold); a batch context keeps it
USER_VERDICT_MARK = "given with --verdict-threshold"
VERDICT_SPREAD_ZERO_SHOT = {"object": 0.18, "texture": 0.075}  # a batch's maxima: test parts scored by each other
MASK_PLATEAU = {"object": None, "texture": 0.7}  # plateau share of stages.mask_rule (objects' maps are graded)
MASK_RELATIVE = {"object": 0.4, "texture": 0.5}  # share of its peak's excess a defect's mask pixel needs
DEFAULT_TARGET_FRR = 0.02
DEFAULT_FEATURE_SIZE = KIND_PRESETS["texture"].feature_size  # for ReferenceSettings built by hand (tests, tools)


# Output channels of each stage (0-6) of the packaged backbones (`models.backbone.LiteFeatures`): the width of a
# context's bank follows from the backbone and the stages alone, so a bank can be checked before anything loads.
STAGE_CHANNELS: dict[str, tuple[int, ...]] = {
    "efficientnet-lite0": (16, 24, 40, 80, 112, 192, 320),
    "efficientnet-lite1": (16, 24, 40, 80, 112, 192, 320),
    "efficientnet-lite2": (16, 24, 48, 88, 120, 208, 352),
}


def feature_width(backbone: str, stages: tuple[int, ...]) -> int | None:
    """Channels of one bank row (the chosen stages concatenated); None for an unknown backbone or stage."""
    channels = STAGE_CHANNELS.get(backbone)
    if channels is None or not stages or any(not 0 <= s < len(channels) for s in stages):
        return None
    return sum(channels[s] for s in stages)


Stages = tuple[int, ...]


class ReferenceSettings(BaseModel):
    """How offline features are extracted and scored; stored in the context so `segment` reproduces them.

    The ranges bound memory and time of an edited context (`context_checks`); keys of other versions are
    ignored on load.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    backbone: Literal["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"] = "efficientnet-lite0"
    feature_size: int = Field(DEFAULT_FEATURE_SIZE, **FEATURE_SIZE_RANGE,
                              description="short side fed to the backbone (long side follows the aspect)")
    max_long_side: int = Field(1536, ge=64, le=4096, description="bound on the long side; beyond it the image shrinks")
    stages: Stages = Field(KIND_PRESETS["texture"].stages, description="backbone stages 0..6; (2, 3) = stride 8/16")
    pool: int = Field(3, ge=1, le=15, description="local neighbourhood aggregation (odd, 1 = off)")
    normalize: str = Field("none", description='"l2": each stage\'s feature vector scaled to unit length')
    augment: tuple[str, ...] = Field(("auto",), description='"auto": flips/rot180 while the bank stays under max_bank')
    k: int = Field(1, ge=1, le=64)
    sigma: float = Field(4.0, ge=0.0, le=64.0, description="gaussian smoothing of the map, in original pixels")
    max_bank: int = Field(16384, ge=1, le=65536, description="patches kept in the bank (greedy coreset above)")
    coreset: float = Field(1.0, ge=0.001, le=1.0, description="fraction of the bank kept by a greedy coreset")
    segment_levels: tuple[tuple[float, float, int], ...] = Field(
        (), max_length=MAX_SEGMENT_LEVELS,
        description="edge-aware refinement (stages.segment_pooling): (scale, sigma, min_size) levels; () = off")
    segment_size: int = Field(DEFAULT_WORKING_SIZE, **SEGMENT_SIZE_RANGE, description="short side at which images are segmented")
    segment_combine: str = Field(DEFAULT_COMBINE, description='how the levels are merged: "geometric" or "mean"')
    segment_smooth: float = Field(DEFAULT_SMOOTH, ge=0.0, le=64.0, description="gaussian after pooling, working pixels")
    # "off" here so hand-built settings and older contexts keep the global bank only; the kind presets set it
    position: str = Field("off", description="position-aware reference (stages.position): auto, on, off")
    position_window: int = Field(1, ge=0, le=64, description="+- cells of the same-position search window")
    position_combine: str = "position"
    position_ratio: float = Field(POSITION_RATIO, ge=0.0, le=1.0,
                                  description="aligned when the share of patches matched better elsewhere <= this")
    photometric: str = Field("none", description='"gain" / "standardize": per-image brightness normalisation')
    fine_stages: Stages = Field((), description="a second bank of fine-scale stages (stages.multiscale); () = one scale")
    fine_max_bank: int = Field(FINE_BANK_ROWS, ge=1, le=65536,
                               description="rows of the fine-scale bank (greedy coreset)")
    scale_combine: str = "sum"
    # 0 here so hand-built settings and older contexts keep maps that are exactly 0 below the floor; resolve sets it
    floor_trace: float = Field(0.0, **FLOOR_TRACE_RANGE,
                               description="below the floor, the order of distances under this share of the peak")

    @field_validator("stages", "fine_stages")
    @classmethod
    def _backbone_stages(cls, v: Stages, info: Any) -> Stages:
        low, high = BACKBONE_STAGES
        if any(not low <= s <= high for s in v) or (info.field_name == "stages" and not v):
            raise ValueError(f"backbone stages {low}..{high}" + (", at least one" if info.field_name == "stages" else ""))
        return v

    @field_validator("pool")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("must be odd")
        return v

    @field_validator("segment_levels")
    @classmethod
    def _levels(cls, v: tuple[tuple[float, float, int], ...]) -> tuple[tuple[float, float, int], ...]:
        if not all(0.0 < a <= 100_000 and 0.0 <= b <= 64 and 1 <= c <= 1_000_000 for a, b, c in v):
            raise ValueError("each level is [Felzenszwalb scale in (0, 100000], sigma in [0, 64], min_size in "
                             "[1, 1000000]]")
        return v

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (tuples as lists), as stored in context.reference.settings; fields added later
        (LATER_REFERENCE_FIELDS) only when set, so an older context saves as it was read."""
        return without_unset_later_fields(self, self.model_dump(mode="json"), LATER_REFERENCE_FIELDS)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ReferenceSettings":
        """Settings of a context (missing keys: the defaults, unknown keys: ignored).

        Contexts of the first refinement have no `segment_combine`: they merged the levels by their plain
        mean, unsmoothed.
        """
        return cls.model_validate(with_older_defaults(d))


def with_older_defaults(d: dict[str, Any]) -> dict[str, Any]:
    """Stored reference settings with the values of the version that wrote them where keys are missing."""
    if "segment_combine" not in d:
        return {**d, "segment_combine": "mean", "segment_smooth": 0.0}
    return d


class Thresholds(BaseModel):
    """Stage 2 thresholds of the paper / fused profiles: stored in the context, read only from there
    (a context of another runner may hold only `verdict`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    box_threshold: float | None = None
    text_threshold: float | None = None
    nms_iou: float | None = None
    size_threshold: float | None = None
    verdict: float | None = Field(None, description="image-score threshold of defect/ok, when calibrated")
    verdict_rule: str | None = Field(None, description="how `verdict` was made (data, statistic, target)")
    mask: float | None = Field(None, description="offline: map score at or above which a defect's pixels join its mask")
    mask_relative: float | None = Field(
        None, ge=0.0, le=1.0, description="offline: a pixel also needs this share of its image's peak (excess over the floor)")
    target_frr: float | None = Field(None, gt=0.0, lt=1.0, description="false-reject rate the verdict was set for")
    mask_plateau: float | None = Field(None, ge=0.0, le=1.0, description="offline: plateau regions are cut at their edge")


class Calibration(BaseModel):
    """How raw distances become scores (offline / fused): the mask threshold t (score 0.5), the floor f
    (score 0), the percentiles they came from and how they were made. `threshold`/`floor` are None in
    zero-shot contexts, which calibrate on the batch itself when it is scored."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    threshold: float | None = Field(None, gt=0.0)
    floor: float = Field(0.0, ge=0.0, description="0 in contexts made before the floor existed")
    image_thresholds: tuple[float, ...] = ()
    percentile: float
    floor_percentile: float = FLOOR_PERCENTILE
    method: str = ""



class ModelSettings(BaseModel):
    """One model to load: reference (hub id, local dir, file) and where it runs."""

    model_config = FROZEN

    model: str
    device: str
    dtype: str = "auto"


class Stage2Switches(BaseModel):
    """Which optional steps of Stage 2 run (the paper's ablations)."""

    model_config = FROZEN

    use_filter: bool
    baseline: bool
    drop_object_boxes: bool


class MutualConfig(BaseModel):
    """Zero-shot mutual scoring (stages.mutual.MutualSettings is built from it with the run's seed)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    references: int = Field(**ZERO_SHOT_RANGES["references"], description="other images of the batch each image is scored against")
    keep_fraction: float = Field(**ZERO_SHOT_RANGES["keep"], description="share of the closest references averaged per patch")
    chunk: int = Field(**ZERO_SHOT_RANGES["chunk"], description="images mutually scored together (bounds memory)")


class TaggerSettings(BaseModel):
    """Stage 1 tagging (step 1-1): the tagger reference, the user's object name and the object-tag rule."""

    model_config = FROZEN

    ref: ModelRef  # 'none': no tagging, the object tag is `object_name`
    object_name: str | None
    object_tag_rule: str  # "official" or "match" (stages.object_tag)
    device: str


class LlmSettings(BaseModel):
    """Stage 1 LLM request (step 1-3): which model, where it runs, how it is asked, decoded and parsed."""

    model_config = FROZEN

    ref: ModelRef  # 'none': no request, the prompt is the fixed prompts only
    server_model: str | None  # the name sent to an OpenAI-compatible server, None when the LLM runs here
    base_url: str | None
    allow_insecure_http: bool
    timeout: float
    retries: int
    max_new_tokens: int
    prompt: str  # "official" or "expert" (stages.prompting)
    decoding: str  # "sample" or "greedy"
    temperature: float
    top_p: float
    seed: int  # the sampling seed: llm_seed, else the run's seed
    parse: str  # "official" or "iapas" (stages.llm_answer)
    max_phrases: int | None
    kind: str  # "object" or "texture" (the expert prompt names it)
    device: str
    dtype: str


class Settings(BaseModel):
    """Everything a profile needs, resolved once from a config (`resolve`).

    `record` is the config itself, written into the contexts a profile makes as the record of how they were
    made; no component reads a setting from it (each reads its own part below).
    """

    model_config = FROZEN

    record: PipelineConfig
    detector: ModelSettings
    segmenter: ModelSettings
    thresholds: Thresholds
    switches: Stage2Switches
    reference: ReferenceSettings
    mask_percentile: float
    mutual: MutualConfig
    device: str
    seed: int
    tagger: TaggerSettings
    llm: LlmSettings
    texture_preset: str  # recorded in the context's fidelity
    threshold_source: str = "paper"  # --thresholds, recorded in the context's fidelity
    kind: str = "object"  # object or texture: the presets above and the verdict's spread
    target_frr: float = DEFAULT_TARGET_FRR  # false-reject rate the calibrated verdict aims at


def floor_percentile_for(mask_percentile: float, floor_percentile: float = FLOOR_PERCENTILE) -> float:
    """The floor's percentile, kept just below the mask percentile when that one is set low."""
    return min(floor_percentile, mask_percentile - 1e-3)


def kind_of(config: PipelineConfig) -> str:
    """The config's kind; unset (chosen from the images by the Pipeline before Stage 1) reads as object,
    the preset of pipelines that never see a normal image (Stage 2 reads the context's own settings)."""
    return config.kind or "object"


def reference_settings(config: PipelineConfig) -> ReferenceSettings:
    """ReferenceSettings of a config: its kind's preset, overridden by every field the config sets."""
    preset = KIND_PRESETS[kind_of(config)]
    stages_given = config.reference_stages
    stages = tuple(sorted(set(stages_given))) if stages_given is not None else preset.stages
    if not stages or min(stages) < 0 or max(stages) > 6:
        raise SettingsError(f"reference_stages must be backbone stages 0..6, got {config.reference_stages}")
    if config.fine_stages is not None:
        fine = tuple(sorted(set(config.fine_stages)))
    else:  # the preset's fine bank goes with the preset's stages only
        fine = preset.fine_stages if stages_given is None else ()
    if fine and (min(fine) < 0 or max(fine) > 6):
        raise SettingsError(f"fine_stages must be backbone stages 0..6, got {config.fine_stages}")
    refine = config.refine if config.refine is not None else preset.refine
    size = config.feature_size if config.feature_size is not None else preset.feature_size
    # the per-stage normalisation was measured with the preset's stages only (it hurts stages 2-4 on thin lines)
    normalize = preset.normalize if stages_given is None else "none"
    return ReferenceSettings(
        backbone=config.backbone, feature_size=int(size), stages=stages,
        segment_levels=DEFAULT_LEVELS if refine == "segments" else (), segment_size=config.segment_size,
        normalize=normalize, sigma=float(preset.sigma), augment=preset.augment, coreset=preset.coreset,
        position=config.position_reference if config.position_reference is not None else preset.position,
        position_combine=preset.position_combine, photometric=preset.photometric,
        fine_stages=fine, scale_combine=preset.scale_combine, fine_max_bank=FINE_BANK_ROWS,
        floor_trace=config.floor_trace,
    )


def thresholds(config: PipelineConfig) -> Thresholds:
    """Stage 2 thresholds: the config's, else the preset of its kind (paper: 0.2 objects, 0.1 textures), or
    0.1 everywhere with `--thresholds official-code` (what the official scripts run)."""
    preset = KIND_THRESHOLDS[kind_of(config)] if config.thresholds == "paper" else OFFICIAL_CODE_THRESHOLD
    return Thresholds(
        box_threshold=config.box_threshold if config.box_threshold is not None else preset,
        text_threshold=config.text_threshold if config.text_threshold is not None else preset,
        nms_iou=config.nms_iou,
        size_threshold=config.size_threshold,
    )


def tagger_settings(config: PipelineConfig) -> TaggerSettings:
    """The tagging settings of a config."""
    return TaggerSettings(ref=config.tagger_ref, object_name=config.object_name,
                          object_tag_rule=config.object_tag_rule, device=config.device)


def llm_settings(config: PipelineConfig) -> LlmSettings:
    """The LLM settings of a config (the sampling seed defaults to the run's seed)."""
    return LlmSettings(
        ref=config.llm_ref, server_model=config.llm_server_model, base_url=config.llm_base_url,
        allow_insecure_http=config.llm_allow_insecure_http, timeout=config.llm_timeout, retries=config.llm_retries,
        max_new_tokens=config.llm_max_new_tokens, prompt=config.llm_prompt, decoding=config.llm_decoding,
        temperature=config.llm_temperature, top_p=config.llm_top_p,
        seed=config.llm_seed if config.llm_seed is not None else config.seed,
        parse=config.llm_parse, max_phrases=config.max_phrases, kind=kind_of(config),
        device=config.device, dtype=config.dtype,
    )


def stage2_dtype(config: PipelineConfig) -> str:
    """Precision of the detector and SAM: `--dtype` when given, float32 for 'auto' (the official code's;
    half precision can move box scores across the 0.1 / 0.2 thresholds)."""
    return STAGE2_AUTO_DTYPE if config.dtype == "auto" else config.dtype


def resolve(config: PipelineConfig) -> Settings:
    """The one place a config becomes component settings."""
    return Settings(
        record=config,
        detector=ModelSettings(model=config.detector, device=config.device, dtype=stage2_dtype(config)),
        segmenter=ModelSettings(model=config.segmenter, device=config.device, dtype=stage2_dtype(config)),
        thresholds=thresholds(config),
        switches=Stage2Switches(use_filter=config.use_filter, baseline=config.baseline,
                                drop_object_boxes=config.drop_object_boxes),
        reference=reference_settings(config),
        mask_percentile=config.mask_percentile,
        mutual=MutualConfig(references=config.zero_shot_references, keep_fraction=config.zero_shot_keep,
                            chunk=config.zero_shot_chunk),
        device=config.device,
        seed=config.seed,
        tagger=tagger_settings(config),
        llm=llm_settings(config),
        texture_preset=config.texture_preset,
        threshold_source=config.thresholds,
        kind=kind_of(config),
        target_frr=config.target_frr,
    )
