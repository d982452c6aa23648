"""Built-in tag vocabulary for the CLIP-family tagger, and the words that mark a tag as anomaly-like.

The vocabulary stands in for RAM's open tag list: industrial objects, parts, materials, textures and
surfaces (covering MVTec-AD, MPDD, BTAD, KSDD, MTD, DTD, DAGM, VisA). It deliberately also holds a few
defect words (a real tagger emits them on worn parts); Step 1-1 drops those and records them.
"""
from __future__ import annotations

import re

OBJECTS: tuple[str, ...] = (
    # MVTec-AD / VisA / MPDD / BTAD objects
    "bottle", "glass bottle", "plastic bottle", "bottle cap", "cable", "electric cable", "wire", "copper wire",
    "capsule", "pill", "tablet", "medicine", "hazelnut", "nut", "walnut", "metal nut", "screw", "bolt",
    "washer", "toothbrush", "brush", "transistor", "electronic component", "zipper", "candle", "cashew",
    "chewing gum", "cookie", "biscuit", "fryum", "snack", "macaroni", "pasta", "pipe fryum", "pcb",
    "printed circuit board", "circuit board", "microchip", "resistor", "capacitor", "diode",
    "connector", "socket", "plug", "terminal", "bracket", "metal bracket", "metal plate", "tubes", "tube",
    "connector pin", "gear", "bearing", "spring", "rivet", "hinge", "valve", "lens", "mirror", "cup",
    "jar", "can", "lid", "box", "cardboard box", "packaging", "label", "button", "coin", "key", "ring",
    "magnet", "battery", "fuse", "led", "light bulb", "switch", "knob", "handle", "wheel", "rubber ring",
    "o-ring", "seal", "gasket", "hose", "belt", "chain", "blade", "knife", "needle", "nail", "pin",
    "clip", "buckle", "hook", "rod", "shaft", "cylinder", "disc", "plate", "sheet", "panel", "tile",
    "magnetic tile", "ceramic tile", "floor tile", "brick", "block", "rail", "steel rail", "beam",
    "casting", "metal casting", "forging", "weld", "welding seam", "injection molded part", "plastic part",
    "metal part", "machine part", "engine part", "car part", "turbine blade", "fan", "propeller",
    "housing", "cover", "frame", "case", "container", "tray", "bag", "pouch", "blister pack", "vial",
    "syringe", "ampoule", "glove", "shoe", "sock", "tire", "wafer", "silicon wafer", "solar cell",
    "solar panel", "display", "screen", "keyboard", "phone", "camera", "sensor", "motor", "pump",
    "fruit", "apple", "orange", "potato", "bean", "grain", "rice", "seed", "almond", "peanut",
)

MATERIALS: tuple[str, ...] = (
    "metal", "steel", "stainless steel", "steel surface", "aluminum", "aluminium", "copper", "brass",
    "iron", "cast iron", "titanium", "chrome", "plastic", "rubber", "glass", "ceramic", "porcelain",
    "concrete", "cement", "stone", "marble", "granite", "sand", "clay", "wood", "wooden board", "plywood",
    "timber", "bamboo", "cork", "paper", "cardboard", "leather", "fabric", "cloth", "textile", "cotton",
    "wool", "silk", "linen", "denim", "felt", "nylon", "polyester", "foam", "sponge", "carbon fiber",
    "fiberglass", "resin", "epoxy", "silicon", "gold", "silver", "ferrite", "magnetic material",
)

TEXTURES: tuple[str, ...] = (
    "carpet", "rug", "grid", "mesh", "wire mesh", "net", "screen mesh", "grating", "woven fabric",
    "knitted fabric", "texture", "surface", "smooth surface", "rough surface", "matte surface",
    "glossy surface", "metallic surface", "brushed metal", "polished metal", "painted surface",
    "coated surface", "pattern", "striped pattern", "checkered pattern", "dotted pattern",
    "honeycomb pattern", "wave pattern", "floral pattern", "geometric pattern", "grain", "wood grain",
    "fiber", "fibrous", "granular", "porous", "bumpy", "braided", "banded", "blotchy", "bubbly",
    "chequered", "cobwebbed", "crosshatched", "crystalline", "flecked", "frilly", "gauzy", "interlaced",
    "lacelike", "lined", "marbled", "matted", "meshed", "paisley", "perforated", "pitted", "pleated",
    "polka-dotted", "scaly", "smeared", "spiralled", "sprinkled", "stratified", "striped", "studded",
    "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged", "background", "close-up",
    "macro photo", "gray", "black", "white", "dark", "bright", "shiny", "reflective", "transparent",
    "industrial", "factory", "product", "object", "component", "part", "tool", "equipment",
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
    for term in (*OBJECTS, *MATERIALS, *TEXTURES, *DEFECT_TAGS):
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


def split_anomaly_tags(tags: list[str]) -> tuple[list[str], list[str]]:
    """(kept, removed): removed tags are anomaly-like and must not describe the normal object."""
    kept = [t for t in tags if not is_anomaly_like(t)]
    removed = [t for t in tags if is_anomaly_like(t)]
    return kept, removed
