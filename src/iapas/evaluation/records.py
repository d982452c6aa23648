"""What the evaluation harness keeps per test image; read back by reports and comparisons.

Layout under an evaluation's --out folder:
  metrics.json, metrics.csv, metrics.md
  contexts/<category>/seed<seed>.json          Stage 1 context of that category and seed
  cache/<category>/seed<seed>/<key>.npz         one EvalRecord per test image (see save_record)
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iapas.io.atomic import atomic_write_npz


@dataclass
class EvalRecord:
    """One evaluated test image at the evaluation resolution."""

    category: str
    seed: int
    image_path: str
    mask_path: str | None
    defect_type: str
    label: int  # 1 anomalous, 0 normal
    score_map: np.ndarray  # eval_size-scaled: float32 raw (standard), float64 official per-image map (paper)
    gt_mask: np.ndarray  # same shape, bool
    image_score: float
    prediction: dict[str, Any]  # Prediction.to_json() (boxes in the loaded image's pixels)
    # [min, max] of the raw map at full resolution; None in paper records, whose map is the official one
    map_range: list[float] | None = None


def save_record(path: str | Path, rec: EvalRecord) -> Path:
    meta = {
        "category": rec.category,
        "seed": rec.seed,
        "image_path": rec.image_path,
        "mask_path": rec.mask_path,
        "defect_type": rec.defect_type,
        "label": rec.label,
        "image_score": rec.image_score,
        "prediction": rec.prediction,
        "map_range": rec.map_range,
    }
    return atomic_write_npz(
        path,
        score_map=rec.score_map if rec.score_map.dtype == np.float64 else rec.score_map.astype(np.float32),
        gt_mask=rec.gt_mask.astype(bool),
        meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
    )


def load_record(path: str | Path) -> EvalRecord:
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
        return EvalRecord(score_map=npz["score_map"], gt_mask=npz["gt_mask"], **meta)


def iter_records(out_dir: str | Path, category: str | None = None, seed: int | None = None) -> Iterator[EvalRecord]:
    """All cached records of an evaluation folder, sorted by category, seed and image path."""
    root = Path(out_dir) / "cache"
    pattern = f"{category or '*'}/seed{seed if seed is not None else '*'}/*.npz"
    for p in sorted(root.glob(pattern)):
        yield load_record(p)
