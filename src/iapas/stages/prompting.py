"""Step 1-3: the image-aware prompt (IAP) sent to the LLM, and the final detector prompt.

The IAP merges what tagging saw in the normal images (object tag + tags) into the question, so the
LLM answers with defects of *this* product rather than generic ones. The final prompt is
LLM words + fixed prompts ("abnormal", "defect") + object tag, deduplicated with order kept.
"""
from __future__ import annotations

from collections.abc import Sequence

from iapas.config import FIXED_PROMPTS
from iapas.stages.llm_answer import dedupe_phrases

NUM_WORDS = 10  # defect phrases asked of the LLM

SYSTEM_PROMPT = (
    "You are an expert in industrial visual quality inspection. You answer with short defect names only, "
    "as a comma-separated list, without explanations."
)

IAP_TEMPLATE = (
    "The image shows {article} {object}{tag_clause}.\n"
    "List {n} short words or phrases (at most three words each) describing visible defects or anomalies "
    "that can appear on {article} {object} {where}, as a quality inspector would name them "
    "(nouns or short adjective phrases).\n"
    "Answer with a comma-separated list only."
)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def build_request(object_tag: str, tags: Sequence[str], kind: str = "object", n: int = NUM_WORDS) -> str:
    """The user message of the IAP: object tag and the other tags merged into the template."""
    others = [t for t in tags if t.lower() != object_tag.lower()]
    return IAP_TEMPLATE.format(
        article=_article(object_tag),
        object=object_tag,
        tag_clause=f" (image tags: {', '.join(others)})" if others else "",
        n=n,
        where="surface in a production line" if kind == "texture" else "in a production line",
    )


def build_messages(request: str) -> list[dict[str, str]]:
    """Chat messages (system + user) for chat templates and OpenAI-compatible servers."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": request}]


def final_prompt(
    defect_words: Sequence[str], object_tag: str | None, fixed: Sequence[str] = FIXED_PROMPTS
) -> list[str]:
    """LLM words + fixed prompts + object tag, deduplicated (case-insensitive), order kept."""
    return dedupe_phrases([*defect_words, *fixed, *([object_tag] if object_tag else [])])
