"""The CLIP stand-in vocabulary is general: no category name a dataset reader knows may appear in it."""
from __future__ import annotations

import re

import pytest

from iapas.data import dataset_names, get_reader, ksdd1, ksdd2, mtd, mvtec, synthetic
from iapas.models.vocabulary import DEFECT_TAGS, split_anomaly_tags, vocabulary

# The published category names of the benchmarks the readers read (folder names as distributed).
MVTEC = ["bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw", "tile",
         "toothbrush", "transistor", "wood", "zipper"]
VISA = ["candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3",
        "pcb4", "pipe_fryum"]
MPDD = ["bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes"]
BTAD = ["01", "02", "03"]
DAGM = [f"Class{i}" for i in range(1, 11)]
DTD_SYNTHETIC = ["Blotchy_099", "Fibrous_183", "Marbled_078", "Matted_069", "Mesh_114", "Perforated_037",
                 "Stratified_154", "Woven_001", "Woven_068", "Woven_104", "Woven_125", "Woven_127"]
# What the single-category datasets picture, and the spelled-out forms of the abbreviations above.
PICTURED = ["magnetic tile", "kolektor", "commutator", "printed circuit board", "chewing gum", "metal nut"]
# DTD's 47 texture classes: DTD-Synthetic's categories are drawn from them, so none is a general tag either.
DTD_CLASSES = (
    "banded blotchy braided bubbly bumpy chequered cobwebbed cracked crosshatched crystalline dotted fibrous flecked "
    "freckled frilly gauzy grid grooved honeycombed interlaced knitted lacelike lined marbled matted meshed paisley "
    "perforated pitted pleated polka-dotted porous potholed scaly smeared spiralled sprinkled stained stratified "
    "striped studded swirly veined waffled woven wrinkled zigzagged"
).split()
COLOURS = {"black", "brown", "white"}


def _words(name: str) -> list[str]:
    """'Metal_Nut' -> ['metal', 'nut'], 'macaroni1' -> ['macaroni'], 'tubes' -> ['tube'] (digits and plurals folded)."""
    words = re.findall(r"[a-z]+", re.sub(r"\d+", " ", name.lower().replace("_", " ").replace("-", " ")))
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]


def forbidden_names() -> set[tuple[str, ...]]:
    """Every category name known to the readers, plus each multi-word name's head noun ('nut', 'fryum', ...)."""
    names = [*MVTEC, *VISA, *MPDD, *BTAD, *DAGM, *DTD_SYNTHETIC, *PICTURED, *DTD_CLASSES]
    names += [*mvtec.MVTEC_TEXTURES, ksdd1.CATEGORY, ksdd2.CATEGORY, mtd.CATEGORY, *synthetic.TEXTURES]
    names += [*dataset_names()]
    out: set[tuple[str, ...]] = set()
    for name in names:
        words = tuple(_words(name))
        if not words:
            continue  # BTAD's '01' has no word
        out.add(words)
        head = [w for w in words if w not in COLOURS]
        out.add((head[-1],) if head else words)
    return out


def _contains(term: tuple[str, ...], name: tuple[str, ...]) -> bool:
    n = len(name)
    return any(term[i : i + n] == name for i in range(len(term) - n + 1))


def test_readers_are_all_covered() -> None:
    """Every registered reader is one of the datasets whose category names are listed above."""
    assert set(dataset_names()) <= {"mvtec", "mpdd", "btad", "ksdd1", "ksdd2", "mtd", "dtd-synthetic", "dagm2007",
                                    "visa", "folder"}
    assert get_reader("mvtec").kind_of("carpet") == "texture"  # the readers are real objects, not just names


def test_no_benchmark_category_name_in_the_vocabulary() -> None:
    forbidden = forbidden_names()
    assert ("nut",) in forbidden and ("magnetic", "tile") in forbidden and ("woven",) in forbidden
    leaks = sorted(t for t in vocabulary() for name in forbidden if _contains(tuple(_words(t)), name))
    assert leaks == [], f"benchmark names in the tagger vocabulary: {leaks}"


@pytest.mark.parametrize("term", ["metal nut", "wood grain", "woven fabric", "bracket", "pipe fryum", "capsules"])
def test_the_check_catches_a_leak(term: str) -> None:
    """The leak check itself fails on the names the old vocabulary held."""
    assert any(_contains(tuple(_words(term)), name) for name in forbidden_names())


def test_vocabulary_is_general_unique_and_lower_case() -> None:
    vocab = vocabulary()
    assert len(vocab) >= 200 and len(vocab) == len(set(vocab)) and vocab == [t.lower() for t in vocab]
    for term in ("metal", "plastic", "glass", "fabric", "smooth surface", "gear", "spring", "packaging"):
        assert term in vocab
    kept, removed = split_anomaly_tags(vocab)
    assert set(removed) == {*DEFECT_TAGS, "close-up", "number"}  # defect words and the official dropped tags
    assert "metal" in kept
