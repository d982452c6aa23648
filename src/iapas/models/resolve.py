"""Where a model reference points, found without any network access (for profile choice, preflight,
`iapas doctor`, and the loader's offline decision).

A hub id counts as present when its config.json is in the local HF cache (huggingface_hub's
try_to_load_from_cache only reads the disk). Presence of the config does not prove every weight file
is there; loading still reports a clear error if not. The loader (models.loading) imports this module,
never the other way round.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from iapas.config import PipelineConfig
from iapas.modelref import ModelRef, RefKind

SNAPSHOT = re.compile(r"snapshots[/\\]([0-9a-f]{40})")  # hub-cache folder of one commit


def snapshot_revision(text: str) -> str | None:
    """The commit of a hub-cache snapshot path ('.../snapshots/<40 hex>/...'), or None."""
    found = SNAPSHOT.search(text)
    return found.group(1) if found else None


def as_ref(ref: str | ModelRef) -> ModelRef:
    """A ModelRef from either form (a string is parsed without a role)."""
    return ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)


def describe_model(ref: str | ModelRef) -> dict[str, Any]:
    """{'ref', 'source': local|cache|missing|none, 'path', 'revision'} for a hub id, folder or file.

    Keyword references (smollm2, openai:, ram) are not files: they are 'missing' here; doctor and preflight
    handle them by kind before asking.
    """
    if not isinstance(ref, ModelRef) and not (ref or "").strip():
        return {"ref": "", "source": "none", "path": None, "revision": None}
    parsed = as_ref(ref)
    text = parsed.text
    if parsed.is_none:
        return {"ref": text, "source": "none", "path": None, "revision": None}
    path = parsed.existing_path()
    if path is not None:
        return {"ref": text, "source": "local", "path": str(path.resolve()), "revision": "local"}
    if parsed.kind is not RefKind.HUB:
        return {"ref": text, "source": "missing", "path": None, "revision": None}
    cached = _cached_config(parsed.name)
    if cached is None:
        return {"ref": text, "source": "missing", "path": None, "revision": None}
    return {"ref": text, "source": "cache", "path": str(Path(cached).parent), "revision": snapshot_revision(cached)}


def _cached_config(repo_id: str) -> str | None:
    """Path of the repo's config.json in the HF cache, or None (invalid ids count as absent)."""
    from huggingface_hub import try_to_load_from_cache  # huggingface_hub: loaded only when a hub id is resolved
    from huggingface_hub.errors import HFValidationError  # huggingface_hub: loaded only when a hub id is resolved

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except (HFValidationError, ValueError, OSError):
        return None
    return hit if isinstance(hit, str) else None


def is_available(ref: str | ModelRef) -> bool:
    return describe_model(ref)["source"] in ("local", "cache")


def paper_weights_available(config: PipelineConfig) -> bool:
    """True when the paper profile's detector and segmenter resolve locally (dir or HF cache), no network."""
    return is_available(config.detector_ref) and is_available(config.segmenter_ref)
