"""Where a model reference points, found without any network access (for profile choice and `iapas doctor`).

A reference is a local path or a Hugging Face id. An id counts as present when its config.json is in
the local HF cache (huggingface_hub.try_to_load_from_cache only reads the disk). Presence of the
config does not prove every weight file is there; loading still reports a clear error if not.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from iapas.config import PipelineConfig
from iapas.models.loading import looks_like_path

_SNAPSHOT = re.compile(r"snapshots[/\\]([0-9a-f]{40})")
NONE_REFS = ("none", "")


def describe_model(ref: str) -> dict[str, Any]:
    """{'ref', 'source': local|cache|missing|none, 'path', 'revision'} for a model reference."""
    ref = (ref or "").strip()
    if ref.lower() in NONE_REFS:
        return {"ref": ref, "source": "none", "path": None, "revision": None}
    path = Path(ref).expanduser()
    if path.exists():
        return {"ref": ref, "source": "local", "path": str(path.resolve()), "revision": "local"}
    if looks_like_path(ref):
        return {"ref": ref, "source": "missing", "path": None, "revision": None}
    cached = _cached_config(ref)
    if cached is None:
        return {"ref": ref, "source": "missing", "path": None, "revision": None}
    found = _SNAPSHOT.search(cached)
    return {
        "ref": ref,
        "source": "cache",
        "path": str(Path(cached).parent),
        "revision": found.group(1) if found else None,
    }


def _cached_config(repo_id: str) -> str | None:
    """Path of the repo's config.json in the HF cache, or None (invalid ids count as absent)."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except (HFValidationError, ValueError, OSError):
        return None
    return hit if isinstance(hit, str) else None


def is_available(ref: str) -> bool:
    return describe_model(ref)["source"] in ("local", "cache")


def paper_weights_available(config: PipelineConfig) -> bool:
    """True when the paper profile's detector and segmenter resolve locally (dir or HF cache), no network."""
    return is_available(config.detector) and is_available(config.segmenter)
