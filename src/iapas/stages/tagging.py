"""Step 1-1, image tagging: what is in the normal images, as words the detector and the LLM can use.

The taggers themselves (RAM, the CLIP-family stand-in) are in `iapas.models.tagger`. Here their
per-image tags are aggregated over the r normal images by how many images show them; each image's
own tags are kept too (the official object-tag rule grounds them).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from iapas.models.tagger import ScoredTags, Tagger

MAX_TAGS = 12  # aggregated tags handed to grounding and the LLM


@dataclass
class TagResult:
    """Aggregated tags over the normal images, best first, plus the per-image evidence."""

    tags: list[str]
    per_image: list[ScoredTags] = field(default_factory=list)


def aggregate_tags(per_image: Sequence[ScoredTags], max_tags: int = MAX_TAGS) -> list[str]:
    """Order tags by the number of images showing them, then by summed score, then alphabetically.

    Args:
        per_image: each image's scored tags; a tag counts once per image.
        max_tags: how many tags to keep.
    Returns:
        At most `max_tags` tags, best first.
    """
    count: dict[str, int] = {}
    total: dict[str, float] = {}
    for tags in per_image:
        for term, score in dict(tags).items():  # one vote per image
            count[term] = count.get(term, 0) + 1
            total[term] = total.get(term, 0.0) + score
    ranked = sorted(count, key=lambda t: (-count[t], -round(total[t], 9), t))
    return ranked[:max_tags]


def tag_images(tagger: Tagger, images: Sequence[np.ndarray], max_tags: int = MAX_TAGS) -> TagResult:
    """Tag every image and aggregate the tags.

    Args:
        tagger: the loaded tagger (`iapas.models.tagger.load_preferred_tagger`).
        images: the sampled r normal images, each (H, W, 3) uint8.
        max_tags: how many aggregated tags to keep.
    Returns:
        The aggregated tags and each image's own scored tags.
    """
    per_image = tagger.tag(images)
    return TagResult(tags=aggregate_tags(per_image, max_tags), per_image=per_image)
