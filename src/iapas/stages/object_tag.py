"""Step 1-1 (end): choose the object tag by grounding the tags on the normal images.

Two rules (config.object_tag_rule):
- "official" (`choose_object_tag_official`, the official code's rule): each normal image is grounded with
  its OWN tags; the image's highest-scoring box gives a phrase, kept as the detector returns it (Grounding
  DINO can merge several tags, e.g. "tile metal"); over the images, the phrase with the highest score
  is the object tag (top-1).
- "match" (`choose_object_tag`, iapas's rule): all tags on every image, each box's phrase mapped back
  to one tag.
The object tag later gives each test image its object box, which bounds defect sizes (Step 1-2 / 2-2).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from iapas.errors import InputError
from iapas.phrases import normalize_phrase, phrase_words
from iapas.types import Detections, DetectorLike


@dataclass
class ObjectTagChoice:
    """The chosen tag, the best score per tag (for review), and why a fallback happened."""

    tag: str | None
    scores: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def match_phrase(phrase: str, tags: Sequence[str]) -> str | None:
    """Map a detector phrase back to a tag: exact, else the tag sharing the most words (first on ties).

    Grounding DINO returns the prompt sub-words above the text threshold, so 'metal' can come back
    for the tag 'metal nut', or 'nut metal' for two neighbouring tags.
    """
    norm = normalize_phrase(phrase)
    for tag in tags:
        if normalize_phrase(tag) == norm:
            return tag
    words = set(norm.split())
    best, best_overlap = None, 0
    for tag in tags:
        overlap = len(words & phrase_words(tag))
        if overlap > best_overlap:
            best, best_overlap = tag, overlap
    return best


def choose_object_tag(
    tags: Sequence[str],
    images: Sequence[np.ndarray],
    detector: DetectorLike | None,
    box_threshold: float,
    text_threshold: float,
) -> ObjectTagChoice:
    """Top-1 tag by detection score over all normal images; falls back to the first tag with a warning.

    Args:
        tags: the aggregated (filtered) tags.
        images: the r normal images, each (H, W, 3) uint8.
        detector: the detector grounding the tags, or None (then the first tag).
        box_threshold, text_threshold: the detector's thresholds.
    Returns:
        The chosen phrase, the best score per phrase, and warnings.
    """
    if not tags:
        return ObjectTagChoice(None, warnings=["no tag survived tagging; no object tag (size filter will not apply)"])
    if detector is None:
        return ObjectTagChoice(tags[0], warnings=[f"no detector for grounding; object tag is the top tag '{tags[0]}'"])
    best: dict[str, float] = {}
    problems: list[str] = []
    for rgb in images:
        try:
            boxes = detector.detect(rgb, list(tags), box_threshold, text_threshold)
        except InputError as exc:
            problems.append(f"grounding skipped an image: {exc}")
            continue
        for phrase, score in zip(boxes.phrases, boxes.scores):
            tag = match_phrase(str(phrase), tags)
            if tag is not None and float(score) > best.get(tag, float("-inf")):
                best[tag] = float(score)
    if not best:
        problems.append(f"the detector found none of the tags on the normal images; object tag is the top tag '{tags[0]}'")
        return ObjectTagChoice(tags[0], warnings=problems)
    order = {t: i for i, t in enumerate(tags)}
    chosen = min(best, key=lambda t: (-best[t], order[t]))
    return ObjectTagChoice(chosen, scores={t: round(s, 6) for t, s in best.items()}, warnings=problems)


def _raw_detect(detector: DetectorLike) -> Callable[..., Detections]:
    """The detector's pass that keeps its own text label per box (`detect_raw`), else plain `detect`."""
    return getattr(detector, "detect_raw", None) or detector.detect


def choose_object_tag_official(
    per_image_tags: Sequence[Sequence[str]],
    images: Sequence[np.ndarray],
    detector: DetectorLike | None,
    box_threshold: float,
    text_threshold: float,
    fallback: Sequence[str] = (),
) -> ObjectTagChoice:
    """Official rule: image i grounded with its own tags, its top box's phrase as it comes; top-1 over images.

    Args:
        per_image_tags: the (filtered) tags of each normal image, same order as `images`.
        images: the r normal images, each (H, W, 3) uint8.
        detector: the detector grounding the tags, or None (then the fallback).
        box_threshold, text_threshold: the detector's thresholds.
        fallback: tags to fall back on (first one) when no image gives a box; the official code crashes there.
    Returns:
        The chosen phrase, the best score per phrase, and warnings.
    """
    first = next((t for tags in per_image_tags for t in tags), None) or (fallback[0] if fallback else None)
    if first is None:
        return ObjectTagChoice(None, warnings=["no tag survived tagging; no object tag (size filter will not apply)"])
    if detector is None:
        return ObjectTagChoice(first, warnings=[f"no detector for grounding; object tag is the top tag '{first}'"])
    detect = _raw_detect(detector)
    best: dict[str, float] = {}
    problems: list[str] = []
    for tags, rgb in zip(per_image_tags, images):
        if not tags:
            continue
        try:
            boxes = detect(rgb, list(tags), box_threshold, text_threshold)
        except InputError as exc:
            problems.append(f"grounding skipped an image: {exc}")
            continue
        phrased = [(normalize_phrase(str(p)), float(sc)) for p, sc in zip(boxes.phrases, boxes.scores)]
        phrased = [(p, sc) for p, sc in phrased if p]
        if not phrased:
            continue
        phrase, score = max(phrased, key=lambda ps: ps[1])  # first box on ties, as torch.max
        if score > best.get(phrase, float("-inf")):
            best[phrase] = score
    if not best:
        problems.append(f"the detector found none of the tags on the normal images; object tag is the top tag '{first}'")
        return ObjectTagChoice(first, warnings=problems)
    chosen = max(best, key=lambda p: best[p])  # first phrase seen on ties
    return ObjectTagChoice(chosen, scores={p: round(sc, 6) for p, sc in best.items()}, warnings=problems)
