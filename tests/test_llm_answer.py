"""Parsing LLM answers of many shapes into short defect phrases (Step 1-3)."""
from __future__ import annotations

import pytest

from iapas.stages.llm_answer import MAX_WORDS, dedupe_phrases, parse_defect_words

CASES = [
    ("bullets with heading", "Here are some defects:\n- Crack\n- Scratch\n- Chipped edge\n- Stain",
     ["crack", "scratch", "chipped edge", "stain"]),
    ("numbered", "1. Cracks\n2) Scratches\n3. Missing corner", ["cracks", "scratches", "missing corner"]),
    ("comma separated", "crack, scratch, dent, blowhole.", ["crack", "scratch", "dent", "blowhole"]),
    ("semicolons", "crack; fray; uneven surface", ["crack", "fray", "uneven surface"]),
    ("json array in chatter", 'Sure! ["crack", "Scratch", "glue residue"]', ["crack", "scratch", "glue residue"]),
    ("json object in code fence", '```json\n{"defects": [{"name": "crack", "description": "x"}, "dent"]}\n```',
     ["crack", "dent"]),
    ("prose with such as", "A magnetic tile may show defects such as cracks, blowholes and uneven surfaces.",
     ["cracks", "blowholes", "uneven surfaces"]),
    ("definitions with markup", "1. **Crack**: a thin line in the surface.\n2. **Blowhole** - a small cavity.\n3. Fray: loose fibres",
     ["crack", "blowhole", "fray"]),
    ("quoted words", "\"crack\", \"dent\", 'scratch'", ["crack", "dent", "scratch"]),
    ("articles and counts", "a crack, the scratch, an oil stain, 3 holes", ["crack", "scratch", "oil stain", "holes"]),
    ("inline heading, parentheses, etc", "Possible defects: crack, dent (small), bent pin etc.", ["crack", "dent", "bent pin"]),
    ("symbols and trailing punctuation", "123, $$$, crack!!!", ["crack"]),
    ("plural duplicates folded", "crack, cracks, Scratch, scratches, CRACK", ["crack", "scratch"]),
    ("unicode bullets and dashes", "\u2022 pin hole\n\u2022 dent \u2013 a hollow\n\u2022 glue strip", ["pin hole", "dent", "glue strip"]),
]


@pytest.mark.parametrize("name,answer,expected", CASES, ids=[c[0] for c in CASES])
def test_answer_shapes(name: str, answer: str, expected: list[str]) -> None:
    assert parse_defect_words(answer, "magnetic tile") == expected


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "   \n  ",
        '* "Tile-on-Tile"\n* "Tile-on-Tile"\n* magnetic tile',  # only the object's own words
        "The tile appears to be perfectly normal and there is nothing wrong with this image at all.",
        "image, defect list, defects",
        "I am sorry, I cannot see any image here.",
        "It may be fine. There is none.",
        "1. No defects: No visible defects or anomalies.\n2. No defects: The tile is perfectly smooth.",
    ],
)
def test_unusable_answers_give_nothing(answer: str) -> None:
    assert parse_defect_words(answer, "magnetic tile") == []


def test_phrases_are_short_and_clean() -> None:
    answer = "- a very long defect phrase that goes on\n- hair-line crack\n- 3D printed flaw\n- ok#word\n- __glue_residue__"
    words = parse_defect_words(answer, "bottle")
    assert words == ["hair-line crack", "glue residue"]
    assert all(len(w.split()) <= MAX_WORDS for w in words)


def test_object_name_removed_but_defective_object_kept() -> None:
    assert parse_defect_words("bottle, broken bottle, crack", "bottle") == ["broken bottle", "crack"]


def test_max_phrases_limits_output() -> None:
    answer = ", ".join(f"defect{c}" for c in "abcdefghij").replace("defect", "kind ")
    assert len(parse_defect_words(answer, "x", max_phrases=4)) == 4


def test_dedupe_phrases_keeps_first_and_order() -> None:
    assert dedupe_phrases(["Crack", "defect", "crack ", "  abnormal", "defect", "metal  nut"]) == [
        "crack", "defect", "abnormal", "metal nut",
    ]


def test_tags_and_echoes_of_the_request_are_dropped() -> None:
    request = "The image shows a metal nut. Other things seen in the image: steel surface, bolt."
    answer = "The image shows a metal nut. Other things seen in the image: nothing else, steel surface, bolts, burr, thread damage"
    assert parse_defect_words(answer, "metal nut", exclude=["bolt"], request=request) == ["burr", "thread damage"]
    echo_only = "Other things seen in the image: steel surface"
    assert parse_defect_words(echo_only, "metal nut", request=request) == []
