"""Image-aware prompt (IAP) construction and the final detector prompt (Step 1-3)."""
from __future__ import annotations

from iapas.config import FIXED_PROMPTS
from iapas.stages.prompting import SYSTEM_PROMPT, build_messages, build_request, final_prompt


def test_request_merges_object_and_tags() -> None:
    req = build_request("metal nut", ["metal nut", "metal", "steel surface"], "object", n=7)
    assert "a metal nut" in req
    assert "(image tags: metal, steel surface)" in req  # other tags, object tag not repeated
    assert "List 7 short words" in req
    assert "comma-separated" in req


def test_request_article_and_texture_wording() -> None:
    req = build_request("oil pan", [], "texture")
    assert "an oil pan" in req and "image tags" not in req and "surface" in req


def test_messages_have_system_and_user() -> None:
    msgs = build_messages("hello")
    assert msgs == [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "hello"}]


def test_final_prompt_order_and_dedupe() -> None:
    got = final_prompt(["crack", "Defect", "blowhole", "crack"], "magnetic tile")
    assert got == ["crack", "defect", "blowhole", "abnormal", "magnetic tile"]


def test_final_prompt_without_llm_words_or_object() -> None:
    assert final_prompt([], "bottle") == [*FIXED_PROMPTS, "bottle"]
    assert final_prompt([], None) == list(FIXED_PROMPTS)


def test_object_tag_equal_to_a_word_is_not_repeated() -> None:
    assert final_prompt(["Bottle ", "dent"], "bottle") == ["bottle", "dent", *FIXED_PROMPTS]
