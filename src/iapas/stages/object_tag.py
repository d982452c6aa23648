"""Step 1-1 (end): choose the object tag by grounding the tags on the normal images.

As in the official code, the tags are given to the open-vocabulary detector on each normal image and
the tag whose box has the highest detection score becomes the object tag (top-1). That tag later gives
each test image its object box, which bounds defect sizes (Step 1-2 / 2-2).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from iapas.errors import InputError
from iapas.profiles.base import DetectorLike

_WORDS = re.compile(r"[a-z0-9]+")


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
    norm = " ".join(_WORDS.findall(phrase.lower()))
    for tag in tags:
        if " ".join(_WORDS.findall(tag.lower())) == norm:
            return tag
    words = set(norm.split())
    best, best_overlap = None, 0
    for tag in tags:
        overlap = len(words & set(_WORDS.findall(tag.lower())))
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
    """Top-1 tag by detection score over all normal images; falls back to the first tag with a warning."""
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
        for box in boxes:
            tag = match_phrase(box.phrase, tags)
            if tag is not None and box.score > best.get(tag, float("-inf")):
                best[tag] = float(box.score)
    if not best:
        problems.append(f"the detector found none of the tags on the normal images; object tag is the top tag '{tags[0]}'")
        return ObjectTagChoice(tags[0], warnings=problems)
    order = {t: i for i, t in enumerate(tags)}
    chosen = min(best, key=lambda t: (-best[t], order[t]))
    return ObjectTagChoice(chosen, scores={t: round(s, 6) for t, s in best.items()}, warnings=problems)
