"""Stage 1 of IAP-AS as one call: tags -> object tag -> image-aware LLM prompt -> final detector prompt.

Profiles call `build_context`; the returned Context records every intermediate (tags, removed tags,
LLM messages and raw answer, parsed words) and, in `fidelity`, which of the official code's choices or
iapas's own were used, so an engineer can review or edit it before Stage 2. The normal images arrive
already sampled (r, seed) by the Pipeline; with the same seed and models the context is identical
(deterministic tagging; greedy or seeded sampling).

Ablations, as the official test_ablation.py / test_zsas.py run them:
- `--llm none`: no LLM request; the prompt is the official single caption "defect, abnormal" (one Grounding
  DINO phrase; the object tag is still found, for the filter);
- `--baseline`: the paper's "base": that caption only, no tagging, no object tag (Stage 2 skips the filter;
  `--protocol paper` skips the per-map min-max, as the official `base` model).
"""
from __future__ import annotations

from typing import Any

from iapas.config import BASE_CAPTION
from iapas.context import Context, Fidelity
from iapas.io.images import LoadedImage
from iapas.models.llm import load_llm, sampling_for
from iapas.models.tagger import STAND_IN_NOTE, is_stand_in, load_preferred_tagger
from iapas.models.vocabulary import split_anomaly_tags
from iapas.settings import LlmSettings, Settings, TaggerSettings, Thresholds
from iapas.stages.llm_answer import MAX_PHRASES, dedupe_phrases, parse_defect_words, parse_official
from iapas.stages.object_tag import choose_object_tag, choose_object_tag_official
from iapas.stages.prompting import final_prompt, request_messages
from iapas.stages.tagging import TagResult, tag_images
from iapas.types import DetectorLike


def _new_context(normal: list[LoadedImage], settings: Settings, detector: DetectorLike | None, profile: str) -> Context:
    ctx = Context(
        profile=profile,
        config=settings.record,  # the record of the run's settings, never read back
        normal_images=[im.path for im in normal],
        seed=settings.seed,
        thresholds=settings.thresholds,
    )
    if detector is not None:
        ctx.models["detector"] = {"id": detector.model_id, "revision": getattr(detector, "revision", None) or "local"}
    return ctx


def fidelity_record(settings: Settings) -> dict[str, Any]:
    """Which choices this context used: the official code's ("official") or iapas's own (named options)."""
    llm = settings.llm
    sampling = sampling_for(llm)
    switches = settings.switches
    return {
        "object_tag_rule": settings.tagger.object_tag_rule,
        "llm_prompt": llm.prompt,
        "llm_decoding": "greedy" if sampling is None
        else f"sample (temperature {sampling.temperature:g}, top_p {sampling.top_p:g}, seed {sampling.seed})",
        "llm_max_new_tokens": llm.max_new_tokens,
        "llm_parse": llm.parse,
        "max_phrases": llm.max_phrases,
        "object_boxes": "dropped" if switches.drop_object_boxes else "kept",
        "size_filter": bool(switches.use_filter and not switches.baseline),
        "texture_preset": settings.texture_preset,
        "tagger": "none" if settings.tagger.ref.is_none or switches.baseline else "pending",
        "precision": settings.detector.dtype,
        "thresholds": settings.threshold_source,
    }


def _per_image_tags(result: TagResult) -> list[list[str]]:
    """Each image's own tags after the paper's filtering and the official code's dropped tags."""
    return [split_anomaly_tags(dedupe_phrases([t for t, _ in scored]))[0] for scored in result.per_image]


def _tags_and_object(
    ctx: Context, normal: list[LoadedImage], tagging: TaggerSettings, th: Thresholds, detector: DetectorLike | None
) -> None:
    """Step 1-1: fill tags, removed_tags and object_tag (or take the user's object name)."""
    if tagging.ref.is_none:
        ctx.object_tag = tagging.object_name
        ctx.tags = [tagging.object_name] if tagging.object_name else []
        if not tagging.object_name:
            ctx.warnings.append("--tagger none without --object: no object tag, the size filter will not apply")
        return
    tagger = load_preferred_tagger(tagging)
    ctx.models["tagger"] = {"id": tagger.model_id, "revision": tagger.revision}
    stand_in = is_stand_in(tagger)
    if ctx.fidelity is not None:
        ctx.fidelity.tagger = "clip stand-in (deviates from the paper)" if stand_in else "ram (as in the paper)"
    if stand_in:
        ctx.warnings.append(STAND_IN_NOTE)
    result = tag_images(tagger, [im.rgb for im in normal])
    ctx.tags, ctx.removed_tags = split_anomaly_tags(dedupe_phrases(result.tags))
    if tagging.object_name:
        ctx.object_tag = tagging.object_name.strip().lower()
        ctx.warnings.append(f"object tag given by the user: '{ctx.object_tag}' (grounding skipped)")
        return
    images = [im.rgb for im in normal]
    bt, tt = th.box_threshold, th.text_threshold
    if tagging.object_tag_rule == "official":
        choice = choose_object_tag_official(_per_image_tags(result), images, detector, bt, tt, fallback=ctx.tags)
    else:
        choice = choose_object_tag(ctx.tags, images, detector, bt, tt)
    ctx.object_tag = choice.tag
    ctx.warnings.extend(choice.warnings)
    if choice.scores:  # best grounding score per tag / phrase, for review (an extra Context field)
        ctx.object_tag_scores = choice.scores


def _ask_llm(ctx: Context, llm: LlmSettings) -> None:
    """Step 1-3: LLM request for the object tag -> parsed defect words (fixed prompts only when unusable)."""
    if llm.ref.is_none:
        return
    subject = ctx.object_tag or (ctx.tags[0] if ctx.tags else "industrial product")
    messages = request_messages(llm.prompt, subject, ctx.tags, llm.kind)
    ctx.llm_request = messages[-1]["content"]
    ctx.llm_messages = messages
    backend = load_llm(llm)
    if backend is None:
        return
    ctx.models["llm"] = {"id": backend.model_id, "revision": backend.revision}
    # a server that stays down raises ModelLoadError: silently dropping the LLM would change the results
    ctx.llm_raw_answer = backend.chat(messages, llm.max_new_tokens, sampling_for(llm))
    if llm.parse == "official":
        ctx.defect_words = parse_official(ctx.llm_raw_answer, llm.max_phrases)
    else:
        ctx.defect_words = parse_defect_words(
            ctx.llm_raw_answer, subject, max_phrases=llm.max_phrases or MAX_PHRASES, exclude=ctx.tags,
            request=ctx.llm_request,
        )
    if not ctx.defect_words:
        ctx.warnings.append("the LLM answer held no usable defect phrase; using the fixed prompts only")


def build_context(
    normal: list[LoadedImage], settings: Settings, detector: DetectorLike | None, profile: str
) -> Context:
    """Run Stage 1 on the sampled normal images and return the reviewable Context.

    Reads only the resolved settings (`settings.tagger`, `settings.llm`, thresholds, switches, seed);
    `settings.record` is stored in the context as the run's record, never consulted.
    """
    ctx = _new_context(normal, settings, detector, profile)
    ctx.fidelity = Fidelity.model_validate(fidelity_record(settings))
    if settings.switches.baseline:  # the paper's "base": one caption, no tagging, no LLM, no size filter
        ctx.final_prompt = [BASE_CAPTION]
        return ctx
    _tags_and_object(ctx, normal, settings.tagger, settings.thresholds, detector)
    if settings.llm.ref.is_none:  # official prompt ablation: the caption 'defect, abnormal' only, no object tag
        ctx.final_prompt = [BASE_CAPTION]
        return ctx
    _ask_llm(ctx, settings.llm)
    ctx.final_prompt = final_prompt(ctx.defect_words, ctx.object_tag)
    return ctx
