"""Detections as arrays: what the detector found on one image, carried through NMS, the size filter, SAM
and scoring to the writers.

In the spirit of supervision's `sv.Detections`: one object holds N boxes as parallel arrays, so a stage
selects with one boolean or index array (`det[keep]`) and every per-box field (score, phrase, SAM mask,
why it was removed) follows. The per-box masks are the reason it exists: with a list of boxes SAM's
masks were summed into the map and lost, so the fused profile had to approximate each mask.

`Box` is the single-box view (iteration, the object box): read-only, no mask.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Index = int | slice | Sequence[int] | Sequence[bool] | np.ndarray


@dataclass(frozen=True)
class Box:
    """One detected region in pixel xyxy of the (loaded) image, with the phrase that found it.

    Attributes:
        xyxy: (x0, y0, x1, y1) in pixels, exclusive right/bottom.
        phrase: the prompt phrase (defect word) that found it.
        score: the detector's confidence (re-scored in the fused profile).
        removed_by: why a stage dropped it (e.g. "size_filter"); None while kept.
    """

    xyxy: tuple[float, float, float, float]
    phrase: str
    score: float
    removed_by: str | None = None

    @property
    def area(self) -> float:
        """Box area in pixels (0 for a degenerate box)."""
        x0, y0, x1, y1 = self.xyxy
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    def to_json(self) -> dict[str, Any]:
        """{"xyxy", "phrase", "score"[, "removed_by"]}: the box dict of every JSON output."""
        out: dict[str, Any] = {
            "xyxy": [round(float(v), 2) for v in self.xyxy],
            "phrase": self.phrase,
            "score": round(float(self.score), 6),
        }
        if self.removed_by:
            out["removed_by"] = self.removed_by
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], scale: tuple[float, float] = (1.0, 1.0)) -> Box:
        """Inverse of `to_json`; `scale` (sx, sy) maps the boxes to an image shown at another size."""
        sx, sy = scale
        x0, y0, x1, y1 = (float(v) for v in data["xyxy"])
        return cls((x0 * sx, y0 * sy, x1 * sx, y1 * sy), str(data.get("phrase", "")), float(data.get("score", 0.0)),
                   data.get("removed_by") or None)


def _object_array(values: Iterable[Any], n: int, what: str) -> np.ndarray:
    out = np.empty(n, dtype=object)
    items = list(values)
    if len(items) != n:
        raise ValueError(f"{n} boxes but {len(items)} {what}")
    out[:] = items
    return out


@dataclass(frozen=True, eq=False)
class Detections:
    """N detected regions of one image as parallel arrays.

    Attributes:
        xyxy: (N, 4) float32 pixel boxes x0, y0, x1, y1 of the loaded image (exclusive right/bottom).
        scores: (N,) float32 confidences.
        phrases: (N,) object array of str: the prompt phrase that found each box.
        masks: (N, H, W) bool SAM masks, one per box, or None before segmentation.
        removed_by: (N,) object array of str: why a stage dropped the box ("size_filter"), "" while kept.

    Lists are accepted and converted, so `Detections(xyxy=[(0, 0, 4, 4)], scores=[0.5], phrases=["crack"])`
    works; `removed_by` defaults to all kept. Treat the arrays as read-only: `with_*` and slicing share them.
    Scores are float32 like the detectors' tensors, so `Box.score` of a hand-made 0.9 reads 0.8999999761.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    phrases: np.ndarray
    masks: np.ndarray | None = None
    removed_by: np.ndarray = field(default=None)  # type: ignore[assignment]  # filled in __post_init__

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = xyxy.shape[0]
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if scores.size != n:
            raise ValueError(f"{n} boxes but {scores.size} scores")
        phrases = _object_array((str(p) for p in self.phrases), n, "phrases")
        removed = self.removed_by
        removed_by = _object_array(([""] * n) if removed is None else (str(r or "") for r in removed), n, "removed_by")
        masks = self.masks
        if masks is not None:
            masks = np.asarray(masks, dtype=bool)
            if masks.ndim != 3 or masks.shape[0] != n:
                raise ValueError(f"{n} boxes but masks of shape {masks.shape} (expected (N, H, W))")
        for name, value in (("xyxy", xyxy), ("scores", scores), ("phrases", phrases), ("masks", masks),
                            ("removed_by", removed_by)):
            object.__setattr__(self, name, value)

    # construction -----------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> Detections:
        """No detections (N = 0)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), [])

    @classmethod
    def from_boxes(cls, boxes: Iterable[Box]) -> Detections:
        """Detections from single-box views (no masks)."""
        items = list(boxes)
        return cls([b.xyxy for b in items], [b.score for b in items], [b.phrase for b in items],
                   removed_by=[b.removed_by or "" for b in items])

    @classmethod
    def from_json(cls, items: Iterable[dict[str, Any]], scale: tuple[float, float] = (1.0, 1.0)) -> Detections:
        """Inverse of `to_json` (boxes rescaled by `scale` = (sx, sy)); masks are not stored in JSON."""
        return cls.from_boxes(Box.from_json(b, scale) for b in items)

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        """All detections of `parts`, in order (e.g. the chunks of a long prompt). Masks are kept only when
        every part has them."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        with_masks = all(p.masks is not None for p in parts)
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.phrases for p in parts]),
            masks=np.concatenate([p.masks for p in parts]) if with_masks else None,  # type: ignore[misc]
            removed_by=np.concatenate([p.removed_by for p in parts]),
        )

    def with_masks(self, masks: np.ndarray) -> Detections:
        """The same detections with (N, H, W) bool masks attached (Step 2-3)."""
        return Detections(self.xyxy, self.scores, self.phrases, masks=masks, removed_by=self.removed_by)

    def with_scores(self, scores: np.ndarray | Sequence[float]) -> Detections:
        """The same detections (masks included) with new (N,) scores, e.g. the fused re-scoring."""
        return Detections(self.xyxy, scores, self.phrases, masks=self.masks, removed_by=self.removed_by)

    def clipped(self, width: int, height: int) -> Detections:
        """The same detections with boxes clipped to a width x height image (the official clamp before SAM)."""
        xy = self.xyxy.copy()
        xy[:, [0, 2]] = np.clip(xy[:, [0, 2]], 0.0, float(width))
        xy[:, [1, 3]] = np.clip(xy[:, [1, 3]], 0.0, float(height))
        return Detections(xy, self.scores, self.phrases, masks=self.masks, removed_by=self.removed_by)

    def removed(self, reason: str) -> Detections:
        """The same detections marked as dropped by `reason` (e.g. "size_filter")."""
        return Detections(self.xyxy, self.scores, self.phrases, masks=self.masks, removed_by=[reason] * len(self))

    # selection and views ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: Index) -> Detections:
        """Detections selected by an int, slice, index array or (N,) boolean mask; always a Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.asarray(index) if not isinstance(index, slice) else index
        if isinstance(idx, np.ndarray) and idx.dtype != bool:
            idx = idx.astype(np.int64).reshape(-1)
        return Detections(
            self.xyxy[idx], self.scores[idx], self.phrases[idx],
            masks=None if self.masks is None else self.masks[idx], removed_by=self.removed_by[idx],
        )

    def __iter__(self) -> Iterator[Box]:
        """Single-box views, in order (masks are not part of the view)."""
        for i in range(len(self)):
            yield self.box(i)

    def box(self, i: int) -> Box:
        """The i-th detection as a `Box`."""
        x0, y0, x1, y1 = (float(v) for v in self.xyxy[i])
        return Box((x0, y0, x1, y1), str(self.phrases[i]), float(self.scores[i]), str(self.removed_by[i]) or None)

    def is_empty(self) -> bool:
        return len(self) == 0

    @property
    def area(self) -> np.ndarray:
        """(N,) float64 box areas in pixels (0 for degenerate boxes); masks do not change it (the size
        filter judges boxes)."""
        xy = self.xyxy.astype(np.float64)
        return np.clip(xy[:, 2] - xy[:, 0], 0, None) * np.clip(xy[:, 3] - xy[:, 1], 0, None)

    def argsort(self) -> np.ndarray:
        """Indices by descending score, stable for equal scores: an (N,) int array."""
        return np.argsort(-self.scores, kind="stable")

    def to_json(self) -> list[dict[str, Any]]:
        """One `Box.to_json` dict per detection: the "boxes" / "removed_boxes" lists of the JSON outputs."""
        return [b.to_json() for b in self]

    def score_list(self) -> list[float]:
        """Scores rounded as the JSON outputs write them."""
        return [round(float(s), 6) for s in self.scores]

    def __repr__(self) -> str:
        masks = "None" if self.masks is None else "x".join(str(s) for s in self.masks.shape)
        return f"Detections(n={len(self)}, phrases={list(self.phrases)}, masks={masks})"
