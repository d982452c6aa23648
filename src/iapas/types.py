"""Result objects passed between stages and to the output writers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class Box:
    """A detected region in pixel xyxy of the (loaded) image, with the phrase that found it."""

    xyxy: tuple[float, float, float, float]
    phrase: str
    score: float
    removed_by: str | None = None  # e.g. "size_filter" when Step 2-2 dropped it

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.xyxy
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "xyxy": [round(float(v), 2) for v in self.xyxy],
            "phrase": self.phrase,
            "score": round(float(self.score), 6),
        }
        if self.removed_by:
            out["removed_by"] = self.removed_by
        return out


@dataclass
class Prediction:
    """Everything Stage 2 says about one image."""

    path: str
    score_map: np.ndarray  # HxW float32, same size as the loaded image; offline in [0, 1), paper/fused the raw sum of s x m (may exceed 1)
    mask: np.ndarray  # HxW bool
    boxes: list[Box]  # kept regions
    image_score: float
    profile: str
    removed_boxes: list[Box] = field(default_factory=list)  # dropped by the size filter
    object_box: Box | None = None
    notes: list[str] = field(default_factory=list)  # e.g. downscaling, fallbacks

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "profile": self.profile,
            "image_score": round(float(self.image_score), 6),
            "size": [int(self.score_map.shape[1]), int(self.score_map.shape[0])],
            "boxes": [b.to_json() for b in self.boxes],
            "phrases": [b.phrase for b in self.boxes],
            "scores": [round(float(b.score), 6) for b in self.boxes],
            "removed_boxes": [b.to_json() for b in self.removed_boxes],
            "object_box": self.object_box.to_json() if self.object_box else None,
            "notes": self.notes,
        }


class DetectorLike(Protocol):
    """An open-vocabulary detector (Grounding DINO, MM-Grounding-DINO, OWLv2) as Stage 1 and 2 use it."""

    model_id: str

    def detect(
        self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float
    ) -> list[Box]:
        """Boxes in pixel xyxy of `rgb` (HxWx3 uint8), each with the phrase that found it and its score.

        Long phrase lists are split into chunks that fit the text encoder; NMS is NOT applied here.
        """
        ...
