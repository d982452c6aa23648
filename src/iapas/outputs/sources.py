"""Reading finished result folders back: `iapas evaluate` folders (records) and `run`/`segment` folders.

Reports and comparisons work on a uniform `ImageResult` per source image, matched across folders by the
source image's resolved path, so two runs over the same files line up whatever their output names.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from iapas.config import PipelineConfig
from iapas.errors import SettingsError
from iapas.evaluation.cache import eval_digest, record_key
from iapas.evaluation.records import EvalRecord, iter_records, load_record
from iapas.io.scoremaps import load_score_map
from iapas.types import Box, Detections, Prediction


def source_key(path: str | Path) -> str:
    """Key for matching the same source image across folders (absolute, symlinks resolved)."""
    return os.path.normcase(os.path.realpath(os.path.expanduser(str(path))))


@dataclass
class ImageResult:
    """One source image as some result folder saw it."""

    path: str
    score_map: np.ndarray
    image_score: float
    category: str = ""
    defect_type: str = ""
    label: int | None = None  # 1 anomalous, 0 normal, None unknown (run folders)
    gt: np.ndarray | None = None
    prediction: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return source_key(self.path)


def result_from_record(rec: EvalRecord) -> ImageResult:
    return ImageResult(path=rec.image_path, score_map=rec.score_map, image_score=float(rec.image_score),
                       category=rec.category, defect_type=rec.defect_type, label=int(rec.label),
                       gt=np.asarray(rec.gt_mask, dtype=bool), prediction=rec.prediction)


def prediction_from_json(data: dict[str, Any], score_map: np.ndarray, rgb_size: tuple[int, int] | None = None,
                         profile: str = "") -> Prediction:
    """Rebuild a Prediction (for drawing) from its JSON; boxes rescaled when the image is shown at another size.

    Args:
        data: the image's JSON record.
        score_map: (H, W) score map read beside it.
        rgb_size: (width, height) of the image shown, or None to keep the boxes as they are.
        profile: the profile's name, when the record lacks it.
    Returns:
        The Prediction.
    """
    size = data.get("size")
    sx = sy = 1.0
    if rgb_size and size and size[0] and size[1]:
        sx, sy = rgb_size[0] / float(size[0]), rgb_size[1] / float(size[1])

    obj = data.get("object_box")
    return Prediction(
        path=str(data.get("path", "")), score_map=score_map, mask=np.zeros(score_map.shape, bool),
        boxes=Detections.from_json(data.get("boxes", []), (sx, sy)), image_score=float(data.get("image_score", 0.0)),
        profile=str(data.get("profile", profile)),
        removed_boxes=Detections.from_json(data.get("removed_boxes", []), (sx, sy)),
        object_box=Box.from_json(obj, (sx, sy)) if obj else None,
    )


class EvalFolder:
    """An `iapas evaluate` output folder: metrics.json, contexts/, cache/ (see evaluation.records)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / "metrics.json"
        try:
            self.metrics: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            self.notes: list[str] = []
            self._last: tuple[tuple[str, int], list[EvalRecord]] | None = None
        except FileNotFoundError:
            raise SettingsError(f"{self.root} is not an evaluation folder (no metrics.json; run `iapas evaluate`)") from None
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{path} is not valid JSON: {exc}") from None

    @property
    def dataset(self) -> str:
        return str(self.metrics.get("dataset", "unknown"))

    @property
    def profile(self) -> str:
        return str(self.metrics.get("profile", "unknown"))

    @property
    def protocol(self) -> str:
        return str(self.metrics.get("protocol", "standard"))

    @property
    def seeds(self) -> list[int]:
        seeds = [int(s) for s in self.metrics.get("seeds", []) or []]
        if not seeds:
            found = sorted({int(p.name[4:]) for p in (self.root / "cache").glob("*/seed*") if p.name[4:].isdigit()})
            seeds = found or [111]
        return seeds

    @property
    def label(self) -> str:
        return f"{self.profile} ({self.root.name})"

    @cached_property
    def categories(self) -> list[str]:
        names = list((self.metrics.get("categories") or {}).keys())
        cache = self.root / "cache"
        if cache.is_dir():
            names += sorted(p.name for p in cache.iterdir() if p.is_dir() and p.name not in names)
        return names

    def records(self, category: str, seed: int | None = None) -> list[EvalRecord]:
        """Cached records of the settings metrics.json was computed with.

        The cache may also hold records of earlier runs with other settings (their file names hash another
        settings digest); those are left out. When the digest cannot be rebuilt (older metrics.json, other
        package version) every cached record is used and `notes` says so.
        """
        seed = self.seeds[0] if seed is None else seed
        if self._last is not None and self._last[0] == (category, seed):
            return list(self._last[1])
        found = self._read_records(category, seed)
        self._last = ((category, seed), found)  # one category at a time: a report reads it several times
        return list(found)

    def _read_records(self, category: str, seed: int) -> list[EvalRecord]:
        files = sorted((self.root / "cache" / category / f"seed{seed}").glob("*.npz"))
        records = [(f, load_record(f)) for f in files]
        digest = self._digest(category, seed)
        if digest is not None:
            matching = [r for f, r in records if record_key(r.image_path, digest) == f.stem]
            if matching:
                return sorted(matching, key=lambda r: r.image_path)
        if records and digest is not None:
            self.notes.append(f"{category}: the cached records do not match the settings in metrics.json "
                              "(other settings or package version); showing every cached record")
        return sorted((r for _, r in records), key=lambda r: r.image_path)

    def _digest(self, category: str, seed: int) -> str | None:
        """The settings digest the evaluation used for this category and seed (see evaluation.cache)."""
        try:
            cfg = PipelineConfig(**self.metrics["config"])
            kind = (self.metrics.get("kinds") or {}).get(category)
            cfg = cfg.model_copy(update={"seed": seed, **({"kind": kind} if kind else {})})
            ctx = self.context(category, seed) or {}
            return eval_digest(cfg, self.profile, int(self.metrics["eval_size"]), str(self.metrics.get("resample", "bilinear")),
                               normals=ctx.get("normal_fingerprint"))
        except (ImportError, KeyError, TypeError, ValueError):  # pydantic's ValidationError is a ValueError
            return None

    def results(self, category: str | None = None, seed: int | None = None) -> list[ImageResult]:
        cats = [category] if category else self.categories
        return [result_from_record(r) for c in cats for r in self.records(c, seed)]

    def context(self, category: str, seed: int | None = None) -> dict[str, Any] | None:
        seed = self.seeds[0] if seed is None else seed
        path = self.root / "contexts" / category / f"seed{seed}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None


def is_eval_folder(folder: Path) -> bool:
    return (folder / "metrics.json").is_file() or (folder / "cache").is_dir()


def load_run_results(folder: str | Path) -> list[ImageResult]:
    """Per-image results of a `run`/`segment` folder: NAME.json (with "path") next to its score map
    (NAME.npz or NAME.npy); images written with `--maps none` are left out (they have no map)."""
    folder = Path(folder)
    out: list[ImageResult] = []
    for meta_path in sorted(folder.glob("*.json")):
        if meta_path.name == "summary.json":
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(meta, dict) or "path" not in meta:
            continue
        files = meta.get("files") or {"score_map": f"{meta_path.stem}.npy"}
        npy = folder / str(files.get("score_map") or "")
        if npy.suffix not in (".npy", ".npz") or not npy.is_file():
            continue
        try:
            score = load_score_map(npy)
        except (OSError, ValueError, KeyError):
            continue
        out.append(ImageResult(path=str(meta["path"]), score_map=score,
                               image_score=float(meta.get("image_score", float(score.max()))), prediction=meta))
    return out


def folder_profile(folder: Path) -> str:
    """Profile named by a result folder (metrics.json or summary.json), for labelling columns."""
    for name in ("metrics.json", "summary.json"):
        try:
            return str(json.loads((folder / name).read_text(encoding="utf-8")).get("profile", "unknown"))
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
    return "unknown"


def load_results(folder: str | Path) -> tuple[str, list[ImageResult]]:
    """("evaluation" | "run", results) of any result folder; SettingsError when it is neither."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SettingsError(f"result folder {folder} does not exist")
    if is_eval_folder(folder):
        if (folder / "metrics.json").is_file():
            ef = EvalFolder(folder)
            return "evaluation", [r for s in ef.seeds[:1] for r in ef.results(seed=s)]
        return "evaluation", [result_from_record(r) for r in iter_records(folder)]
    results = load_run_results(folder)
    if not results:
        raise SettingsError(
            f"{folder} holds no results: expected an `iapas evaluate` folder (metrics.json, cache/) or an "
            "`iapas run`/`segment` folder (NAME.npz or NAME.npy + NAME.json per image; not written with --maps none)"
        )
    return "run", results
