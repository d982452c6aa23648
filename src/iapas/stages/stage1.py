"""Stage 1 of IAP-AS as one call: tags -> object tag -> image-aware LLM prompt -> final detector prompt.

Profiles call `build_context`; the returned Context records every intermediate (tags, removed tags,
LLM request and raw answer, parsed words) so an engineer can review or edit it before Stage 2.
The normal images arrive already sampled (r, seed) by the Pipeline; with the same seed and models
the context is identical (deterministic tagging, greedy decoding).
"""
from __future__ import annotations

from iapas.config import FIXED_PROMPTS, PipelineConfig
from iapas.context import Context
from iapas.io.images import LoadedImage
from iapas.profiles.base import DetectorLike
from iapas.stages.llm import load_llm
from iapas.stages.llm_answer import dedupe_phrases, parse_defect_words
from iapas.stages.object_tag import choose_object_tag
from iapas.stages.prompting import build_messages, build_request, final_prompt
from iapas.stages.tagging import load_tagger, tag_images
from iapas.stages.vocabulary import split_anomaly_tags


def _new_context(normal: list[LoadedImage], config: PipelineConfig, detector: DetectorLike | None, profile: str) -> Context:
    ctx = Context(
        profile=profile,
        config=config,
        normal_images=[im.path for im in normal],
        seed=config.seed,
        thresholds={
            "box_threshold": config.effective_box_threshold,
            "text_threshold": config.effective_text_threshold,
            "nms_iou": config.nms_iou,
            "size_threshold": config.size_threshold,
        },
    )
    if detector is not None:
        ctx.models["detector"] = {"id": detector.model_id, "revision": getattr(detector, "revision", None) or "local"}
    return ctx


def _tags_and_object(ctx: Context, normal: list[LoadedImage], config: PipelineConfig, detector: DetectorLike | None) -> None:
    """Step 1-1: fill tags, removed_tags and object_tag (or take the user's object name)."""
    if config.tagger == "none":
        ctx.object_tag = config.object_name
        ctx.tags = [config.object_name] if config.object_name else []
        if not config.object_name:
            ctx.warnings.append("--tagger none without --object: no object tag, the size filter will not apply")
        return
    tagger = load_tagger(config.tagger, config.device)
    ctx.models["tagger"] = {"id": tagger.model_id, "revision": tagger.revision}
    result = tag_images(tagger, [im.rgb for im in normal])
    ctx.tags, ctx.removed_tags = split_anomaly_tags(dedupe_phrases(result.tags))
    if config.object_name:
        ctx.object_tag = config.object_name.strip().lower()
        ctx.warnings.append(f"object tag given by the user: '{ctx.object_tag}' (grounding skipped)")
        return
    choice = choose_object_tag(
        ctx.tags,
        [im.rgb for im in normal],
        detector,
        config.effective_box_threshold,
        config.effective_text_threshold,
    )
    ctx.object_tag = choice.tag
    ctx.warnings.extend(choice.warnings)
    if choice.scores:  # best grounding score per tag, for review (an extra Context field)
        setattr(ctx, "object_tag_scores", choice.scores)


def _ask_llm(ctx: Context, config: PipelineConfig) -> None:
    """Step 1-3: image-aware prompt -> LLM -> parsed defect words (fixed prompts only when unusable)."""
    if config.llm == "none":
        return
    subject = ctx.object_tag or (ctx.tags[0] if ctx.tags else "industrial product")
    request = build_request(subject, ctx.tags, config.kind)
    ctx.llm_request = request
    backend = load_llm(config)
    if backend is None:
        return
    ctx.models["llm"] = {"id": backend.model_id, "revision": backend.revision}
    # a server that stays down raises ModelLoadError: silently dropping the LLM would change the results
    ctx.llm_raw_answer = backend.chat(build_messages(request), config.llm_max_new_tokens)
    ctx.defect_words = parse_defect_words(ctx.llm_raw_answer, subject, exclude=ctx.tags, request=request)
    if not ctx.defect_words:
        ctx.warnings.append("the LLM answer held no usable defect phrase; using the fixed prompts only")


def build_context(
    normal: list[LoadedImage], config: PipelineConfig, detector: DetectorLike | None, profile: str
) -> Context:
    """Run Stage 1 on the sampled normal images and return the reviewable Context."""
    ctx = _new_context(normal, config, detector, profile)
    if config.baseline:  # the paper's "base": fixed prompts only, no tagging, no LLM
        ctx.final_prompt = list(FIXED_PROMPTS)
        return ctx
    _tags_and_object(ctx, normal, config, detector)
    _ask_llm(ctx, config)
    ctx.final_prompt = final_prompt(ctx.defect_words, ctx.object_tag)
    return ctx
