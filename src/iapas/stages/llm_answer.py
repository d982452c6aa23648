"""Turn whatever an LLM answered into a clean list of short defect phrases for the detector.

LLMs answer in many shapes (bullets, numbered lists, JSON, prose with "such as ...", headings,
"Crack: a thin line ..." definitions). Grounding DINO needs short noun phrases, so every candidate is
lower-cased, stripped of articles, numbering and quotes, limited to <= 4 words of letters, spaces and
hyphens, and deduplicated. Words that do not describe an anomaly (the object itself, "image") go.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

MAX_WORDS = 4
MAX_PHRASES = 15

_BULLET = re.compile(r"^\s*(?:[-*\u2022\u25cf\u25aa\u2013\u2014>]+|\(?\d{1,2}[.):]|\(?[a-z][.)](?=\s))\s*")
_HEADING_HINT = re.compile(
    r"\b(here|sure|following|below|list|possible|common|some|these|include|includes|including|are|is)\b"
)
_INTRO = re.compile(r"\b(?:such as|including|include|includes|like|e\.g\.|for example|for instance|namely)\b[:,]?", re.I)
_SPLIT = re.compile(r"\s*(?:[,;/|\n]|\band\b|\bor\b|\betc\b\.?)\s*")
_ALLOWED = re.compile(r"^[a-z][a-z\- ]*[a-z]$|^[a-z]$")
_LEADING = re.compile(r"^(?:(?:a|an|the|some|any|other|possible|visible|various|several|small|\d+)\s+)+")
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_MARKUP = re.compile(r"[*`\"\u201c\u201d\u2018\u2019]")

IRRELEVANT: frozenset[str] = frozenset(
    {
        "image", "images", "picture", "photo", "defect list", "list", "defects", "anomalies", "anomaly list",
        "visible defects", "defect types", "answer", "none", "n a", "na", "etc", "sure", "yes", "no", "here",
        "object", "objects", "product", "surface", "item", "words", "phrases", "others", "other", "more",
        "examples", "example", "include", "including", "such", "types", "kinds",
    }
)
# words of sentences, not of defect names: a candidate holding one is chatter ("i am sorry", "it may be")
SENTENCE_WORDS: frozenset[str] = frozenset(
    {
        "i", "im", "am", "is", "are", "was", "were", "be", "been", "you", "we", "it", "its", "this", "that",
        "these", "those", "there", "here", "my", "your", "our", "sorry", "cannot", "can", "could", "would",
        "should", "will", "may", "might", "have", "has", "had", "do", "does", "not", "see", "sure", "please",
        "which", "what", "if", "as", "shows", "show", "appear", "appears", "nothing", "else", "anything",
        "something", "everything", "seen",
        # negation and normality: "no defects", "perfectly smooth" describe a good part
        "no", "none", "without", "normal", "perfect", "perfectly", "good", "fine", "ok", "okay", "flawless",
    }
)
FILLER: frozenset[str] = frozenset({"of", "on", "in", "the", "a", "an", "with", "to", "at", "and", "or", "for"})


def _json_items(text: str) -> list[str] | None:
    """Strings of the first JSON array (or of the first list value of a JSON object) in the text."""
    for opener, closer in (("[", "]"), ("{", "}")):
        start, end = text.find(opener), text.rfind(closer)
        if start == -1 or end <= start:
            continue
        try:
            data = json.loads(text[start : end + 1])
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if isinstance(data, list):
            items = []
            for x in data:
                if isinstance(x, str):
                    items.append(x)
                elif isinstance(x, dict):  # [{"name": "crack", "description": ...}]
                    name = x.get("name") or x.get("defect") or x.get("type")
                    if isinstance(name, str):
                        items.append(name)
            return items
    return None


def _segments(text: str) -> Iterable[str]:
    """The parts of each line that can hold defect names (list items, text after a colon or 'such as')."""
    text = re.sub(r"```[a-z]*", "\n", text)
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        is_item = bool(_BULLET.match(line))
        line = _MARKUP.sub("", _BULLET.sub("", line, count=1)).strip()
        if ":" in line:
            head, _, tail = line.partition(":")
            if is_item and len(head.split()) <= MAX_WORDS:
                line = head  # "Crack: a thin line in the surface" -> "Crack"
            elif not tail.strip():
                if _HEADING_HINT.search(head.lower()) or len(head.split()) > MAX_WORDS:
                    continue  # "Here are some defects:" is a heading
                line = head
            else:
                line = tail
        elif is_item:
            for dash in (" - ", " \u2013 ", " \u2014 "):
                if dash in line:
                    line = line.split(dash, 1)[0]  # "Dent - a hollow ..." -> "Dent"
        intro = _INTRO.search(line)
        if intro:
            line = line[intro.end() :]
        for sentence in re.split(r"(?<=[a-z])\.\s+", line):
            yield sentence


def _clean(candidate: str) -> str:
    s = _PAREN.sub(" ", candidate.lower()).replace("_", " ")  # __bold__ and snake_case
    s = _MARKUP.sub("", s)
    s = re.sub(r"[.!?:]+$", "", s.strip()).strip(" '\"-")
    s = re.sub(r"\s+", " ", s)
    s = _LEADING.sub("", s)
    return s.strip()


def _key(phrase: str) -> str:
    """Dedupe key that folds simple plurals ('cracks' == 'crack', 'scratches' == 'scratch')."""
    words = []
    for w in phrase.replace("-", " ").split():
        if len(w) > 4 and w.endswith(("ches", "shes", "xes", "sses")):
            w = w[:-2]
        elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        words.append(w)
    return " ".join(words)


def _words_in(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z]+", text.lower())) + " "


def parse_defect_words(
    answer: str,
    object_name: str | None = None,
    max_phrases: int = MAX_PHRASES,
    exclude: Sequence[str] = (),
    request: str = "",
) -> list[str]:
    """Short defect phrases from an LLM answer, order kept; [] when nothing usable is in it.

    `exclude` (e.g. the normal-image tags) names things that are not defects; phrases that occur in
    the `request` itself are echoes of the question (small models repeat it) and are dropped too.
    """
    if not answer or not answer.strip():
        return []
    object_words = set(re.findall(r"[a-z]+", (object_name or "").lower()))
    excluded = {_key(e.strip().lower()) for e in exclude if e.strip()}
    echo = _words_in(request) if request else ""
    items = _json_items(answer)
    candidates: Iterable[str]
    if items:
        candidates = [part for item in items for part in _SPLIT.split(item)]
    else:
        candidates = (part for seg in _segments(answer) for part in _SPLIT.split(seg))
    out: list[str] = []
    seen: set[str] = set()
    for cand in candidates:
        phrase = _clean(cand)
        if not phrase or not _ALLOWED.match(phrase) or len(phrase.split()) > MAX_WORDS:
            continue
        words = set(re.findall(r"[a-z]+", phrase))
        if phrase in IRRELEVANT or phrase == (object_name or "").lower().strip() or words & SENTENCE_WORDS:
            continue
        if words <= (object_words | FILLER | {"image", "defect", "defects"}):
            continue  # only the object's own words ("tile-on-tile", "defective tile" is kept)
        key = _key(phrase)
        if key in excluded or (echo and _words_in(phrase) in echo):
            continue
        if key in seen:
            continue
        seen.add(key)
        out.append(phrase)
        if len(out) >= max_phrases:
            break
    return out


def dedupe_phrases(phrases: Sequence[str]) -> list[str]:
    """Case- and space-insensitive dedupe that keeps the first spelling and the order."""
    out: list[str] = []
    seen: set[str] = set()
    for p in phrases:
        norm = re.sub(r"\s+", " ", p.strip().lower())
        if norm and norm not in seen:
            seen.add(norm)
            out.append(norm)
    return out


OFFICIAL_DROPPED = re.compile(r"\b(?:word|Word|none|None|of|part)\b")  # the official spellings, as whole words


def parse_official(answer: str, max_phrases: int | None = None) -> list[str]:
    """Phrases by the official `clean_string` rules; the fixed prompts and the object tag are added by
    `prompting.final_prompt`.

    As the official code: strip "." and "," from the ends of the answer; delete doubled quotes ('' and "");
    delete the words "word", "Word", "none", "None", "of", "part" (those spellings only: "Of" stays); split
    on commas; drop a word repeated inside a phrase (exact, case-sensitive); delete every "." (not a space:
    "crack.dent" -> "crackdent"); keep every other character (quotes, "-", "*", ...); lower case (the
    official caption is lower-cased before Grounding DINO reads it). No cap unless `max_phrases` is given.
    Deliberate differences (docs/fidelity.md, bugs 7-9): the words are deleted as whole words ("sword"
    stays), the order of first appearance is kept (the official `set` order changes from run to run),
    empty phrases are dropped, and a phrase that repeats after lower-casing is kept once.
    """
    text = (answer or "").strip(".,").replace("''", "").replace('""', "")
    text = OFFICIAL_DROPPED.sub("", text)
    out: list[str] = []
    for part in text.split(","):
        words = list(dict.fromkeys(part.split()))
        phrase = " ".join(" ".join(words).replace(".", "").lower().split())
        if phrase and phrase not in out:
            out.append(phrase)
            if max_phrases is not None and len(out) >= max_phrases:
                break
    return out
