"""Device, dtype and revision helpers shared by the Stage 1 model backends (tagger, LLM).

Kept torch-free at import time; torch is imported inside the functions.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_SNAPSHOT = re.compile(r"snapshots[/\\]([0-9a-f]{40})")


def resolve_device(name: str = "auto") -> str:
    """'auto' -> cuda, else mps, else cpu; an explicit name is returned unchanged."""
    if name != "auto":
        return name
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(name: str, device: str) -> Any:
    """Torch dtype for `name`; 'auto' is float16 on GPUs and float32 on CPU (CPU half is slow or absent)."""
    import torch

    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def model_revision(model: Any, ref: str) -> str:
    """The commit a model was loaded from: config `_commit_hash`, a hub-cache snapshot dir, else 'local'."""
    config = getattr(model, "config", None)
    commit = getattr(config, "_commit_hash", None) if config is not None else None
    if isinstance(commit, str) and commit:
        return commit
    for text in (str(getattr(model, "name_or_path", "") or ""), ref):
        found = _SNAPSHOT.search(text)
        if found:
            return found.group(1)
    return "local"


def is_local_ref(ref: str) -> bool:
    """True when `ref` names an existing file or folder rather than a hub id."""
    return Path(ref).expanduser().exists()
