"""Step 1-3: the image-aware prompt (IAP) sent to the LLM, and the final detector prompt.

Two request styles (config.llm_prompt):
- "official" (default): the messages of the official code, asked once per object tag, byte for byte
  (system: list lowercase words 'word, word'; user: abnormal parts of {tag}, anomalous nouns in {tag} images,
  with the line break and indentation of the official source);
- "expert": iapas's template, which also merges the other tags into the question.
The final prompt is LLM words + fixed prompts ("abnormal", "defect") + object tag, deduplicated with
order kept.
"""
from __future__ import annotations

from collections.abc import Sequence

from iapas.config import FIXED_PROMPTS
from iapas.stages.llm_answer import dedupe_phrases

NUM_WORDS = 10  # defect phrases asked of the LLM (expert template)

OFFICIAL_SYSTEM_PROMPT = "The assistant should always answer only by listing lowercase words in the following format: 'word, word'"
# byte for byte as the official f-string holds it: " \n" and 20 spaces of source indentation between the sentences
OFFICIAL_USER_TEMPLATE = (
    "I would like to extract words to enter into the object detection model to find abnormal parts of {tag}. \n"
    "                    Please write down non-redundant anomalous nouns that can appear in {tag} images."
)

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


def build_messages(request: str, system: str = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """Chat messages (system + user) for chat templates and OpenAI-compatible servers."""
    return [{"role": "system", "content": system}, {"role": "user", "content": request}]


def official_messages(object_tag: str) -> list[dict[str, str]]:
    """The official code's request for one object tag (system + user), as the paper's LLM received it."""
    return build_messages(OFFICIAL_USER_TEMPLATE.format(tag=object_tag), OFFICIAL_SYSTEM_PROMPT)


def request_messages(style: str, object_tag: str, tags: Sequence[str], kind: str = "object") -> list[dict[str, str]]:
    """Messages for config.llm_prompt: 'official' (per object tag) or 'expert' (iapas template with the tags)."""
    if style == "official":
        return official_messages(object_tag)
    return build_messages(build_request(object_tag, tags, kind))


def final_prompt(
    defect_words: Sequence[str], object_tag: str | None, fixed: Sequence[str] = FIXED_PROMPTS
) -> list[str]:
    """LLM words + fixed prompts + object tag, deduplicated (case-insensitive), order kept."""
    return dedupe_phrases([*defect_words, *fixed, *([object_tag] if object_tag else [])])
