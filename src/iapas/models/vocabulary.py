"""Built-in tag vocabulary for the CLIP-family stand-in tagger, and the words that mark a tag as anomaly-like.

The paper tags with RAM, an open tagger with thousands of everyday tags. Without RAM, a CLIP-family
model scores this vocabulary instead: general objects, parts, materials and surfaces. It deliberately
holds NO benchmark category name (no "bottle", "metal nut", "magnetic tile", "pipe fryum", "wood", DTD's
texture classes, ...): a zero-shot method must not be handed the answer. tests/test_vocabulary.py
fails if a category name known to the dataset readers appears here. It also holds a few defect words
(a real tagger emits them on worn parts); Step 1-1 drops those and records them.
"""
from __future__ import annotations

import re

OBJECTS: tuple[str, ...] = (
    "box", "cardboard box", "crate", "container", "jar", "can", "cup", "mug", "bowl", "lid", "cap", "bag",
    "pouch", "packaging", "package", "label", "sticker", "tape", "envelope", "tray", "basket", "bucket",
    "spring", "gear", "bearing", "bolt", "washer", "rivet", "nail", "pin", "hinge", "valve", "pipe", "hose",
    "wire", "cord", "rope", "chain", "belt", "wheel", "tire", "disc", "ring", "coin", "key", "button",
    "knob", "switch", "handle", "lever", "blade", "knife", "scissors", "tool", "wrench", "hammer",
    "needle", "clip", "hook", "rod", "shaft", "axle", "cylinder", "cube", "sphere", "ball", "cone",
    "panel", "sheet", "slab", "beam", "rail", "frame", "housing", "cover", "case", "shell", "vial",
    "syringe", "battery", "electronic component", "circuit", "lamp", "light bulb", "lens",
    "mirror", "fan", "motor", "pump", "engine", "machine", "machine part", "metal part", "plastic part",
    "casting", "forging", "weld", "seam", "sensor", "camera", "phone", "display", "keyboard", "remote",
    "toy", "shoe", "glove", "sock", "shirt", "hat", "clothing", "towel", "pillow", "furniture", "chair",
    "table", "shelf", "door", "window", "wall", "floor", "roof", "road", "pavement", "fence", "car",
    "bicycle", "food", "snack", "cookie", "cracker", "bread", "cake", "candy", "chocolate", "cereal",
    "fruit", "apple", "orange", "banana", "vegetable", "potato", "bean", "rice", "seed", "flower", "leaf",
    "tree", "plant", "rock", "pebble", "sand", "soil", "water", "ice", "snow", "sky", "cloud",
    "medicine", "tablet", "paper", "book", "pen", "pencil", "ruler", "letter", "text", "logo", "sign",
)

MATERIALS: tuple[str, ...] = (
    "metal", "steel", "stainless steel", "aluminum", "copper", "brass", "iron", "cast iron", "titanium",
    "chrome", "plastic", "rubber", "glass", "ceramic", "porcelain", "concrete", "cement", "stone", "granite",
    "clay", "plywood", "timber", "bamboo", "cork", "cardboard", "fabric", "cloth", "textile", "cotton",
    "wool", "silk", "linen", "denim", "felt", "nylon", "polyester", "foam", "sponge", "carbon fiber",
    "fiberglass", "resin", "epoxy", "silicon", "gold", "silver", "paint", "plaster", "asphalt", "wax",
)

SURFACES: tuple[str, ...] = (
    "surface", "smooth surface", "rough surface", "matte surface", "glossy surface", "metallic surface",
    "brushed metal", "polished metal", "painted surface", "coated surface", "texture", "pattern",
    "repeating pattern", "geometric pattern", "abstract", "background", "gray background",
    "black background", "white background", "close-up", "macro photo", "number", "gray", "black",
    "white", "dark", "bright", "shiny", "reflective", "transparent", "industrial", "factory", "product",
    "object", "component", "part", "equipment", "material",
)

# Defect words a real tagger emits; they are in the vocabulary so that removal is exercised and recorded.
DEFECT_TAGS: tuple[str, ...] = (
    "crack", "scratch", "hole", "stain", "rust", "dent", "broken", "damage", "dirt", "spot",
)

ANOMALY_WORDS: frozenset[str] = frozenset(
    {
        "abnormal", "abnormality", "anomalous", "anomaly", "abrasion", "blister", "blowhole", "break",
        "breakage", "broken", "bubble", "bump", "burn", "burnt", "burr", "chip", "chipped", "contamination",
        "contaminated", "corroded", "corrosion", "crack", "cracked", "crease", "crumb", "cut", "damage",
        "damaged", "deformation", "deformed", "defect", "defective", "dent", "dented", "dirt", "dirty",
        "discoloration", "discolored", "faulty", "flaw", "flawed", "fracture", "fractured", "fray", "frayed",
        "glue", "hole", "impurity", "leak", "misaligned", "missing", "mold", "mould", "peel", "peeling",
        "pinhole", "poke", "puncture", "rust", "rusty", "scrape", "scratch", "scratched", "smudge", "spot",
        "squeeze", "stain", "stained", "tear", "torn", "uneven", "wear", "worn", "fault", "rot", "rotten",
    }
)


def vocabulary() -> list[str]:
    """All built-in tags, deduplicated, order kept (objects first so ties favour object words)."""
    seen: dict[str, None] = {}
    for term in (*OBJECTS, *MATERIALS, *SURFACES, *DEFECT_TAGS):
        seen.setdefault(term.strip().lower(), None)
    return list(seen)


_WORD = re.compile(r"[a-z]+")


def _stem(word: str) -> str:
    """Crude singular/participle folding so 'cracks' / 'scratches' match 'crack' / 'scratch'."""
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            base = word[: -len(suffix)]
            if base in ANOMALY_WORDS:
                return base
    return word


def is_anomaly_like(tag: str) -> bool:
    """True when any word of the tag names a defect (crack, scratched, holes, ...)."""
    words = _WORD.findall(tag.lower())
    return any(w in ANOMALY_WORDS or _stem(w) in ANOMALY_WORDS for w in words)


# Tags the official code removes from RAM's output before grounding (they are never the object).
OFFICIAL_DROPPED_TAGS: frozenset[str] = frozenset({"close-up", "number"})


def is_dropped_tag(tag: str) -> bool:
    """Anomaly-like (the paper's tag filtering) or one of the official code's dropped tags."""
    return tag.strip().lower() in OFFICIAL_DROPPED_TAGS or is_anomaly_like(tag)


def split_anomaly_tags(tags: list[str]) -> tuple[list[str], list[str]]:
    """(kept, removed): removed tags are anomaly-like, or "close-up" / "number" (dropped by the official code)."""
    kept = [t for t in tags if not is_dropped_tag(t)]
    removed = [t for t in tags if is_dropped_tag(t)]
    return kept, removed
