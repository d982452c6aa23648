"""Where each test image's evaluation record lives under --out, keyed so reruns resume safely.

The key hashes the image's absolute path with a settings digest (config, profile, evaluation size,
package version, resampling), so changing any of these never reuses a stale prediction. The two
protocols resize differently (bilinear 256 px vs the official bicubic 400 px), so each has its records.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from iapas.config import PipelineConfig, settings_digest


def eval_digest(config: PipelineConfig, profile: str, eval_size: int, resample: str = "bilinear",
                normals: str | None = None, record_rule: str | None = None) -> str:
    """Digest of everything that changes a cached record; `normals` is `files_fingerprint` of the sampled
    Stage 1 images, so normal images overwritten under the same names recompute the records;
    `record_rule` names how a protocol reads masks and stores maps (the paper protocol's official forms)."""
    extra = {"resample": resample} if resample != "bilinear" else {}
    if normals is not None:
        extra["normals"] = normals
    if record_rule is not None:
        extra["record_rule"] = record_rule
    return settings_digest(config, profile, eval_size=eval_size, purpose="evaluate", **extra)


def record_key(image_path: str | Path, digest: str) -> str:
    text = f"{os.path.realpath(image_path)}|{digest}"  # as Path.resolve(), but a symlink loop cannot raise
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def record_path(out: Path, category: str, seed: int, image_path: str | Path, digest: str) -> Path:
    return out / "cache" / category / f"seed{seed}" / f"{record_key(image_path, digest)}.npz"


def context_path(out: Path, category: str, seed: int) -> Path:
    return out / "contexts" / category / f"seed{seed}.json"
