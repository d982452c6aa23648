"""The one rule for reusing earlier work on a rerun: Stage 1 contexts (`run`, `evaluate`) and per-image
outputs (`run`, `segment`) alike.

Why one rule: three hand-written checks had drifted apart (one compared configs field by field, one a
digest, one a digest plus file times). Each kept result now carries a `Stamp` — the digest of every
setting that changes it and a fingerprint of the inputs it was made from — and is reused only when
`matches` says the stored stamp equals the current one and every file the result lists still exists.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIGEST_KEY = "settings_digest"
SOURCE_KEY = "source"


@dataclass(frozen=True)
class Stamp:
    """What a kept result was made from: settings (`digest`) and inputs (`source`; None = not checked)."""

    digest: str
    source: Any = None

    def to_json(self) -> dict[str, Any]:
        return {DIGEST_KEY: self.digest, SOURCE_KEY: self.source}


def matches(stored: Any, stamp: Stamp, files: Iterable[Path] = ()) -> bool:
    """True when `stored` (a result's JSON record, or the stamp saved with it) was made with the same
    settings and, when `stamp.source` is given, from the same inputs, and every one of `files` exists."""
    if not isinstance(stored, dict) or stored.get(DIGEST_KEY) != stamp.digest:
        return False
    if stamp.source is not None and stored.get(SOURCE_KEY) != stamp.source:
        return False
    return all(Path(f).is_file() for f in files)
