"""Where each test image's evaluation record lives under --out, keyed so reruns resume safely.

The key hashes the image's absolute path with a settings digest (config, profile, evaluation size,
package version), so changing any of these never reuses a stale prediction, while the protocol is
not part of it: both protocols are computed from the same raw maps.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from iapas.config import PipelineConfig, settings_digest
from iapas.io.fingerprint import files_fingerprint


def eval_digest(config: PipelineConfig, profile: str, eval_size: int, normals: list[Path] | None = None) -> str:
    """Digest of everything that changes a cached record; with `normals` (the sampled Stage 1 images)
    also their content, so normal images overwritten under the same names recompute the records."""
    extra = {"normals": files_fingerprint(normals)} if normals is not None else {}
    return settings_digest(config, profile, eval_size=eval_size, purpose="evaluate", **extra)


def record_key(image_path: str | Path, digest: str) -> str:
    text = f"{Path(image_path).resolve()}|{digest}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def record_path(out: Path, category: str, seed: int, image_path: str | Path, digest: str) -> Path:
    return out / "cache" / category / f"seed{seed}" / f"{record_key(image_path, digest)}.npz"


def context_path(out: Path, category: str, seed: int) -> Path:
    return out / "contexts" / category / f"seed{seed}.json"
