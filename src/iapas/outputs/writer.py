"""Per-image outputs of `run` / `segment` and the run's summary.json (contract in DESIGN.md §3).

Per image NAME: NAME.npy (float32 score map), NAME_mask.png, NAME_overlay.png, NAME.json. The JSON is
written last and carries the settings digest, so a rerun of the same command knows the image is done.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iapas.io.atomic import atomic_write_image, atomic_write_json, atomic_write_npy
from iapas.types import Prediction

_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._") or "image"


def output_names(paths: list[Path]) -> dict[Path, str]:
    """A distinct output name per input: the stem, widened with the extension and then the folders
    only where two inputs would otherwise collide (a.png vs a.jpg, x/a.png vs y/a.png)."""
    resolved = [Path(p) for p in paths]
    names = {p: _safe(p.stem) for p in resolved}
    for widen in ("suffix", "parents"):
        counts = Counter(names.values())
        for p in resolved:
            if counts[names[p]] > 1:
                if widen == "suffix":
                    names[p] = _safe(f"{p.stem}_{p.suffix.lstrip('.')}")
                else:
                    parts = [*p.resolve().parent.parts[-3:], f"{p.stem}_{p.suffix.lstrip('.')}"]
                    names[p] = _safe("__".join(parts))
    counts = Counter(names.values())
    seen: Counter[str] = Counter()
    for p in resolved:  # last resort (same path given twice): number them
        if counts[names[p]] > 1:
            seen[names[p]] += 1
            names[p] = f"{names[p]}__{seen[names[p]]}"
    return names


def is_done(out_dir: Path, name: str, digest: str) -> bool:
    """True when NAME.json exists, is complete, and was made with the same settings."""
    meta = out_dir / f"{name}.json"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return data.get("settings_digest") == digest and (out_dir / f"{name}.npy").is_file()


def write_prediction(out_dir: Path, name: str, rgb: np.ndarray, pred: Prediction, digest: str) -> dict[str, str]:
    """Write the four per-image files; the JSON last so a crash never leaves a 'done' image half-written."""
    from iapas.outputs.overlay import render_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "score_map": f"{name}.npy",
        "mask": f"{name}_mask.png",
        "overlay": f"{name}_overlay.png",
        "json": f"{name}.json",
    }
    atomic_write_npy(out_dir / files["score_map"], pred.score_map.astype(np.float32))
    atomic_write_image(out_dir / files["mask"], (pred.mask.astype(np.uint8) * 255))
    atomic_write_image(out_dir / files["overlay"], render_overlay(rgb, pred))
    meta = pred.to_json()
    meta.update({"name": name, "files": files, "settings_digest": digest})
    atomic_write_json(out_dir / files["json"], meta)
    return files


@dataclass
class RunSummary:
    """Status of every input of a run; rewritten after each image so an interruption loses nothing."""

    out_dir: Path
    profile: str
    settings_digest: str
    context: str | None = None
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, path: Path, name: str | None, status: str, error: str | None = None, **extra: Any) -> None:
        item: dict[str, Any] = {"path": str(path), "name": name, "status": status}
        if error:
            item["error"] = error
        item.update(extra)
        self.items[str(path)] = item

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [{"path": i["path"], "error": i["error"]} for i in self.items.values() if i["status"] == "failed"]

    def counts(self) -> dict[str, int]:
        return dict(Counter(i["status"] for i in self.items.values()))

    def save(self) -> Path:
        return atomic_write_json(
            self.out_dir / "summary.json",
            {
                "profile": self.profile,
                "settings_digest": self.settings_digest,
                "context": self.context,
                "counts": self.counts(),
                "inputs": list(self.items.values()),
                "failures": self.failures,
            },
        )
