"""Flags shared by `run`, `prompts` and `evaluate`, mapped one to one onto PipelineConfig fields.

Every config field has a flag here (`FLAG_FIELDS` says which field each flag sets; tests/test_settings.py
checks that none is missing), so a config file is a convenience, never the only way to set something.
"""
from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from iapas.config import PipelineConfig, build_config
from iapas.profiles.registry import check_profile
from iapas.settings import KIND_PRESETS, KIND_THRESHOLDS

# `--help` panels, in the order a user needs them; a new option joins the panel of its neighbours
PANEL_INPUTS = "Inputs"
PANEL_OUTPUTS = "Outputs"
PANEL_MODELS = "Profile and models"
PANEL_OFFLINE = "Offline reference (offline / fused profiles)"
PANEL_PAPER = "Paper / LLM (paper / fused profiles)"
PANEL_ENGINE = "Engine"
PANEL_ORDER = (PANEL_INPUTS, PANEL_OUTPUTS, PANEL_MODELS, PANEL_OFFLINE, PANEL_PAPER, PANEL_ENGINE)
# parameter name -> its panel, for the commands built with `with_pipeline_flags` (a new flag: add one line here)
OPTION_PANELS: dict[str, str] = {
    **dict.fromkeys(("images", "normal", "context_file", "include", "exclude", "num_normal", "seed"), PANEL_INPUTS),
    **dict.fromkeys(("out", "maps", "export", "verdict_threshold", "fail_on_defect"), PANEL_OUTPUTS),
    **dict.fromkeys(("profile", "config_file", "detector", "segmenter", "tagger", "llm", "kind", "device", "dtype"),
                    PANEL_MODELS),
    **dict.fromkeys(("refine", "backbone", "feature_size", "reference_stages", "segment_size", "mask_percentile",
                     "zero_shot_references", "zero_shot_keep", "zero_shot_chunk", "target_frr", "position_reference",
                     "fine_stages", "floor_trace"), PANEL_OFFLINE),
    **dict.fromkeys(("llm_base_url", "llm_allow_insecure_http", "object_name", "no_filter", "baseline",
                     "object_tag_rule", "llm_prompt", "llm_decoding", "llm_seed", "llm_parse", "max_phrases",
                     "drop_object_boxes", "texture_preset", "thresholds", "box_threshold", "text_threshold", "size_threshold",
                     "llm_timeout", "llm_retries", "llm_max_new_tokens", "llm_temperature", "llm_top_p", "nms_iou"),
                    PANEL_PAPER),
    **dict.fromkeys(("threads", "engine", "ray_address", "ray_actors"), PANEL_ENGINE),
}

ProfileOpt = Annotated[Optional[str], typer.Option(
    "--profile", help="a registered profile: paper, offline, fused, or one a plugin registers (`iapas doctor` lists "
                      "them; default: offline when no hub weights are present)")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML or TOML file with the same settings; flags override it")]
DetectorOpt = Annotated[Optional[str], typer.Option("--detector", help="Grounding DINO / MM-GDINO / OWLv2: HF model id or local dir")]
SegmenterOpt = Annotated[Optional[str], typer.Option("--segmenter", help="SAM / SAM-HQ: HF model id or local dir")]
TaggerOpt = Annotated[Optional[str], typer.Option("--tagger", help=(
    "'ram' / 'ram++[:CKPT]' (the paper's tagger), a CLIP/SigLIP id or dir (a stand-in, said in the outputs), "
    "or 'none' with --object (tag from --object; the official image ablation tags one image: -r 1)"))]
LlmOpt = Annotated[Optional[str], typer.Option("--llm", help=(
    "chat model id or dir, a .gguf file, 'smollm2', 'openai:MODEL', or 'none' (the official prompt ablation: "
    "the single caption 'defect, abnormal'). Default Llama-3-8B-Instruct is gated; open: Qwen/Qwen2.5-7B-Instruct"))]
LlmUrlOpt = Annotated[Optional[str], typer.Option("--llm-base-url", help="OpenAI-compatible server URL; key from $IAPAS_LLM_API_KEY or $OPENAI_API_KEY")]
LlmInsecureOpt = Annotated[bool, typer.Option("--llm-allow-insecure-http", help="allow the API key over plain http to a non-loopback --llm-base-url")]
ObjectOpt = Annotated[Optional[str], typer.Option("--object", help="object tag to use instead of tagging, e.g. 'magnetic tile'")]
KindOpt = Annotated[Optional[str], typer.Option("--kind", help=(
    "object, texture or auto (default: chosen from the normal images, printed and recorded in the context): "
    f"threshold preset {KIND_THRESHOLDS['object']:g} / {KIND_THRESHOLDS['texture']:g} and offline feature preset"))]
NoFilterOpt = Annotated[bool, typer.Option("--no-filter", help="skip the size filter (Step 2-2), as the official filter ablation")]
BaselineOpt = Annotated[bool, typer.Option("--baseline", help="paper's 'base': the single caption 'defect, abnormal', no tagging, no LLM, no size filter, no per-map min-max under --protocol paper")]
ObjectTagRuleOpt = Annotated[Optional[str], typer.Option("--object-tag-rule", help="official (default: each normal image grounded with its own tags, top phrase as it comes) or match (iapas: phrase mapped back to one tag)")]
LlmPromptOpt = Annotated[Optional[str], typer.Option("--llm-prompt", help="official (default: the paper's messages per object tag) or expert (iapas's template with all tags)")]
LlmDecodingOpt = Annotated[Optional[str], typer.Option("--llm-decoding", help="sample (default: temperature 0.6, top_p 0.9, seeded by --llm-seed or --seed) or greedy (iapas)")]
LlmParseOpt = Annotated[Optional[str], typer.Option("--llm-parse", help="official (default: clean_string rules, no cap) or iapas (robust parser for chatty answers)")]
MaxPhrasesOpt = Annotated[Optional[int], typer.Option("--max-phrases", help="cap on the LLM phrases in the prompt (default: no cap, as the official code; iapas used 15)")]
LlmSeedOpt = Annotated[Optional[int], typer.Option("--llm-seed", help="seed of the LLM sampling (default: --seed)")]
DropObjectBoxesOpt = Annotated[bool, typer.Option("--drop-object-boxes", help="iapas option: drop every anomaly box labelled with the object tag (the paper keeps them)")]
TexturePresetOpt = Annotated[Optional[str], typer.Option("--texture-preset", help="evaluate: paper (default: Table 1, all MVTec-AD at 0.2) or per-category (MVTec's five textures at 0.1)")]
NumNormalOpt = Annotated[Optional[int], typer.Option("--num-normal", "-r", help="r: normal images sampled for Stage 1 (default 10)")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="seed of the normal-image sample (default 111)")]
ThresholdsOpt = Annotated[Optional[str], typer.Option("--thresholds", help=(
    "paper (default: box / text thresholds 0.2 objects, 0.1 textures, as the paper says) or official-code "
    "(0.1 / 0.1 on every dataset, as the official scripts run); --box-threshold / --text-threshold override both"))]
BoxThrOpt = Annotated[Optional[float], typer.Option("--box-threshold", help="detector box threshold in [0, 1]")]
TextThrOpt = Annotated[Optional[float], typer.Option("--text-threshold", help="detector text threshold in [0, 1]")]
SizeThrOpt = Annotated[Optional[float], typer.Option("--size-threshold", help="keep boxes with area < this x object area (0.8)")]
RefineOpt = Annotated[Optional[str], typer.Option("--refine", help=(
    "offline/fused map refinement: segments (maps follow image edges) or none (~1.6x faster); default: preset of --kind, "
    + ", ".join(f"{k} {p.refine}" for k, p in KIND_PRESETS.items())))]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or mps")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="threads for torch, OpenCV, BLAS and the segment pool (default: the CPUs this process may use)")]
IncludeOpt = Annotated[Optional[list[str]], typer.Option("--include", metavar="GLOB", help="in input folders, only files matching this glob (name or path inside the folder, e.g. '*.jpg', 'lotA/*'); repeat for several")]
ExcludeOpt = Annotated[Optional[list[str]], typer.Option("--exclude", metavar="GLOB", help="in input folders, leave out files matching this glob; repeat for several")]
MapsOpt = Annotated[str, typer.Option("--maps", help=(
    "score map per image: npz16 (float16, compressed), npy (float32) or none (mask, overlay and JSON only)"))]
ExportOpt = Annotated[Optional[str], typer.Option("--export", help="also write annotations for correction tools: coco (OUT/annotations.json, COCO instance segmentation with RLE masks; needs pycocotools)")]
VerdictThresholdOpt = Annotated[Optional[float], typer.Option("--verdict-threshold", help="judge parts at this image score instead of the context's calibrated threshold (see context.json thresholds.verdict; `iapas calibrate` re-fits it on labelled parts)")]
FailOnDefectOpt = Annotated[bool, typer.Option("--fail-on-defect", help="exit 5 when every input was processed and at least one image is a defect (line integration)")]
DtypeOpt = Annotated[Optional[str], typer.Option("--dtype", help=(
    "auto, float32, float16 or bfloat16; auto = float32 for the detector and SAM (the official code's precision), "
    "half precision for a local LLM on a GPU; the precision used is recorded in the context"))]
LlmTimeoutOpt = Annotated[Optional[float], typer.Option("--llm-timeout", help="seconds to wait for an LLM server's answer (default 60)")]
LlmRetriesOpt = Annotated[Optional[int], typer.Option("--llm-retries", help="retries of a failed LLM request (default 2)")]
LlmMaxTokensOpt = Annotated[Optional[int], typer.Option("--llm-max-new-tokens", help="length bound of the LLM answer (official 512)")]
LlmTemperatureOpt = Annotated[Optional[float], typer.Option("--llm-temperature", help="LLM sampling temperature in (0, 2] (official 0.6)")]
LlmTopPOpt = Annotated[Optional[float], typer.Option("--llm-top-p", help="LLM nucleus sampling top_p in (0, 1] (official 0.9)")]
NmsIouOpt = Annotated[Optional[float], typer.Option("--nms-iou", help="IoU above which overlapping boxes are merged by NMS (paper 0.5)")]
BackboneOpt = Annotated[Optional[str], typer.Option("--backbone", help="offline/fused features: efficientnet-lite0 (default), -lite1 or -lite2")]
FeatureSizeOpt = Annotated[Optional[int], typer.Option("--feature-size", help=(
    "offline/fused: short side (px) fed to the backbone (default: preset of --kind, "
    + ", ".join(f"{k} {p.feature_size}" for k, p in KIND_PRESETS.items()) + ")"))]
ReferenceStagesOpt = Annotated[Optional[str], typer.Option("--reference-stages", metavar="LIST", help=(
    "offline/fused: backbone stages of the features, comma-separated, 0-6 (default: preset of --kind, "
    + ", ".join(f"{k} {','.join(map(str, p.stages))}" for k, p in KIND_PRESETS.items()) + ")"))]
FineStagesOpt = Annotated[Optional[str], typer.Option("--fine-stages", metavar="LIST", help=(
    "offline: a second bank of these fine backbone stages (e.g. 2,3) whose calibrated map is added: sees fine "
    "textures and thin lines; none = off (default: preset of --kind: textures 2,3, objects off)"))]
PositionReferenceOpt = Annotated[Optional[str], typer.Option("--position-reference", help=(
    "offline: compare each patch with normal patches at its own place, for aligned objects: auto (decided on the "
    "normal images and recorded in the context), on, off (default: preset of --kind, "
    + ", ".join(f"{k} {p.position}" for k, p in KIND_PRESETS.items()) + ")"))]
SegmentSizeOpt = Annotated[Optional[int], typer.Option("--segment-size", help="offline/fused: short side (px) at which images are segmented for --refine segments (default 112)")]
MaskPercentileOpt = Annotated[Optional[float], typer.Option("--mask-percentile", help="offline/fused: percentile of the normal images' distances that sets the mask threshold (default 99.5)")]
TargetFrrOpt = Annotated[Optional[float], typer.Option("--target-frr", help="offline: share of good parts the calibrated verdict may reject, 0-0.5 (default 0.02)")]
FloorTraceOpt = Annotated[Optional[float], typer.Option("--floor-trace", help="offline: below the calibrated floor a map keeps the order of its distances under this share of its peak, 0-0.01 (default 0.001; 0 = exactly 0; no decision changes)")]
ZeroShotReferencesOpt = Annotated[Optional[int], typer.Option("--zero-shot-references", help="zero-shot: other images of the batch each image is scored against (default 24)")]
ZeroShotKeepOpt = Annotated[Optional[float], typer.Option("--zero-shot-keep", help="zero-shot: share of the closest references averaged per patch (default 0.3)")]
ZeroShotChunkOpt = Annotated[Optional[int], typer.Option("--zero-shot-chunk", help="zero-shot: images scored together, bounds memory (default 128)")]


# Name, annotation and default of each pipeline flag, in the order `--help` shows them.
PIPELINE_FLAGS: list[tuple[str, Any, Any]] = [
    ("profile", ProfileOpt, None),
    ("config_file", ConfigOpt, None),
    ("detector", DetectorOpt, None),
    ("segmenter", SegmenterOpt, None),
    ("tagger", TaggerOpt, None),
    ("llm", LlmOpt, None),
    ("llm_base_url", LlmUrlOpt, None),
    ("llm_allow_insecure_http", LlmInsecureOpt, False),
    ("object_name", ObjectOpt, None),
    ("kind", KindOpt, None),
    ("no_filter", NoFilterOpt, False),
    ("baseline", BaselineOpt, False),
    ("object_tag_rule", ObjectTagRuleOpt, None),
    ("llm_prompt", LlmPromptOpt, None),
    ("llm_decoding", LlmDecodingOpt, None),
    ("llm_seed", LlmSeedOpt, None),
    ("llm_parse", LlmParseOpt, None),
    ("max_phrases", MaxPhrasesOpt, None),
    ("drop_object_boxes", DropObjectBoxesOpt, False),
    ("texture_preset", TexturePresetOpt, None),
    ("num_normal", NumNormalOpt, None),
    ("seed", SeedOpt, None),
    ("thresholds", ThresholdsOpt, None),
    ("box_threshold", BoxThrOpt, None),
    ("text_threshold", TextThrOpt, None),
    ("size_threshold", SizeThrOpt, None),
    ("refine", RefineOpt, None),
    ("device", DeviceOpt, None),
    ("dtype", DtypeOpt, None),
    ("threads", ThreadsOpt, None),
    ("llm_timeout", LlmTimeoutOpt, None),
    ("llm_retries", LlmRetriesOpt, None),
    ("llm_max_new_tokens", LlmMaxTokensOpt, None),
    ("llm_temperature", LlmTemperatureOpt, None),
    ("llm_top_p", LlmTopPOpt, None),
    ("nms_iou", NmsIouOpt, None),
    ("backbone", BackboneOpt, None),
    ("feature_size", FeatureSizeOpt, None),
    ("reference_stages", ReferenceStagesOpt, None),
    ("segment_size", SegmentSizeOpt, None),
    ("fine_stages", FineStagesOpt, None),
    ("position_reference", PositionReferenceOpt, None),
    ("mask_percentile", MaskPercentileOpt, None),
    ("target_frr", TargetFrrOpt, None),
    ("floor_trace", FloorTraceOpt, None),
    ("zero_shot_references", ZeroShotReferencesOpt, None),
    ("zero_shot_keep", ZeroShotKeepOpt, None),
    ("zero_shot_chunk", ZeroShotChunkOpt, None),
]
# flag parameter -> the PipelineConfig field it sets, where the names differ (on/off switches invert or imply)
FLAG_FIELDS: dict[str, str] = {"no_filter": "use_filter"}
CLI_ONLY_FLAGS = ("config_file",)  # flags that are not config fields


def with_pipeline_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command every pipeline flag; it receives them as `flags: dict` (None = not given).

    Declared once here so `run`, `prompts` and `evaluate` cannot drift apart.
    """
    sig = inspect.signature(func)
    # evaluate string annotations (from __future__ import annotations): a __signature__ with strings
    # would make typer drop the Option declarations (e.g. --normal would become a positional argument)
    hints = typing.get_type_hints(func, include_extras=True)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values() if p.name != "flags"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, annotation, default in PIPELINE_FLAGS
    ]

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = {name: kwargs.pop(name, default) for name, _, default in PIPELINE_FLAGS}
        return func(*args, flags=flags, **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=in_panel(p.annotation, p.name))
              for p in own + added]  # click passes keywords only, so any order is valid
    params.sort(key=lambda p: _panel_rank(p.annotation))  # stable: `--help` shows the panels in PANEL_ORDER
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper


def in_panel(annotation: Any, name: str) -> Any:
    """`annotation` with its typer.Option placed in the `--help` panel OPTION_PANELS gives `name` (a copy:
    the shared Option objects stay untouched); unchanged when it names none or the option has one."""
    import copy

    from typer.models import OptionInfo

    panel = OPTION_PANELS.get(name)
    args = typing.get_args(annotation) if typing.get_origin(annotation) is Annotated else ()
    if panel is None or not args:
        return annotation
    meta = []
    for m in args[1:]:
        if isinstance(m, OptionInfo) and m.rich_help_panel is None:
            m = copy.copy(m)
            m.rich_help_panel = panel
        meta.append(m)
    return Annotated.__class_getitem__((args[0], *meta))  # type: ignore[attr-defined]


def _panel_rank(annotation: Any) -> int:
    """Position of an option's `--help` panel in PANEL_ORDER (-1 without a panel: typer.Context, ...)."""
    for meta in getattr(annotation, "__metadata__", ()):
        panel = getattr(meta, "rich_help_panel", None)
        if panel in PANEL_ORDER:
            return PANEL_ORDER.index(panel)
    return -1


def config_from_flag_dict(flags: dict[str, Any], **extra: Any) -> PipelineConfig:
    """PipelineConfig from the dict that `with_pipeline_flags` passes."""
    fields = {k: v for k, v in flags.items() if k not in ("config_file", "no_filter", "baseline", "drop_object_boxes")}
    fields["use_filter"] = False if flags.get("no_filter") else None  # switches: None = not given
    fields["baseline"] = True if flags.get("baseline") else None
    fields["drop_object_boxes"] = True if flags.get("drop_object_boxes") else None
    fields["llm_allow_insecure_http"] = True if flags.get("llm_allow_insecure_http") else None
    fields["reference_stages"] = parse_int_list(flags.get("reference_stages"), "--reference-stages")
    fine = flags.get("fine_stages")
    fields["fine_stages"] = [] if fine is not None and fine.strip().lower() in ("none", "off", "") else \
        parse_int_list(fine, "--fine-stages")
    if fields.get("kind") == "auto":
        fields["kind"] = None
    config = build_config(flags.get("config_file"), **fields, **extra)
    check_profile(config)  # a registered name (profile_names()) that suits the other settings
    return config


def parse_int_list(value: str | None, flag: str) -> list[int] | None:
    """'2,3' -> [2, 3] (None when not given); a clear error for anything else."""
    if value is None:
        return None
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        from iapas.errors import SettingsError

        raise SettingsError(f"{flag} takes comma-separated integers, e.g. 2,3 (got {value!r})") from None


def hide_flag_types() -> None:
    """typer prints `<bool>` as the value type of on/off flags, even of `--help`, though a flag takes no
    value; show nothing there instead (idempotent)."""
    from typer.core import TyperOption

    original = TyperOption.display_type_rich
    if getattr(original, "_iapas_flags_hidden", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and not self.count else original(self, ctx)

    display_type_rich._iapas_flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def parse_export(value: str | None) -> tuple[str, ...]:
    """`--export coco` (comma-separated for several formats) checked before any model loads."""
    from iapas.errors import SettingsError
    from iapas.outputs.run_items import EXPORT_FORMATS

    if not value:
        return ()
    chosen = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
    bad = [v for v in chosen if v not in EXPORT_FORMATS]
    if bad:
        raise SettingsError(f"--export {', '.join(bad)}: unknown format; allowed: {', '.join(EXPORT_FORMATS)}")
    if "coco" in chosen:
        import importlib.util

        if importlib.util.find_spec("pycocotools") is None:
            raise SettingsError("--export coco needs pycocotools: pip install 'iapas[export]'")
    return chosen
