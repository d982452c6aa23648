"""The one rule by which phrases are compared across stages (detector labels, tags, the object tag).

Grounding DINO returns lower-cased sub-words with punctuation and special tokens; tags and LLM words come
with their own case and spacing. Every stage compares them as lower-case alphanumeric words joined by
single spaces, so 'Magnetic  Tile.' and 'magnetic tile' are the same phrase everywhere.
"""
from __future__ import annotations

import re

_WORDS = re.compile(r"[a-z0-9]+")


def normalize_phrase(text: str) -> str:
    """Lower-case words joined by single spaces ('Magnetic  Tile.' -> 'magnetic tile')."""
    return " ".join(_WORDS.findall(text.lower()))


def phrase_words(text: str) -> set[str]:
    """The set of words of a phrase, as `normalize_phrase` sees them."""
    return set(_WORDS.findall(text.lower()))
