"""Result objects passed between stages and to the output writers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from iapas.detections import Box, Detections

__all__ = ["Box", "Detections", "DetectorLike", "Prediction"]


@dataclass
class Prediction:
    """Everything Stage 2 says about one image."""

    path: str
    score_map: np.ndarray  # HxW float32, same size as the loaded image; offline in [0, 1), paper/fused the raw sum of s x m (may exceed 1)
    mask: np.ndarray  # HxW bool
    boxes: Detections  # kept regions (with their SAM masks in the paper and fused profiles)
    image_score: float
    profile: str
    removed_boxes: Detections = field(default_factory=Detections.empty)  # dropped by the size filter
    object_box: Box | None = None  # the object's own box (Step 1-2): a single box, not a set
    notes: list[str] = field(default_factory=list)  # e.g. downscaling, fallbacks

    def __post_init__(self) -> None:
        """Hand-made predictions (tests, plug-in profiles) may give boxes as a list of `Box`."""
        if not isinstance(self.boxes, Detections):
            self.boxes = Detections.from_boxes(self.boxes)
        if not isinstance(self.removed_boxes, Detections):
            self.removed_boxes = Detections.from_boxes(self.removed_boxes)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "profile": self.profile,
            "image_score": round(float(self.image_score), 6),
            "size": [int(self.score_map.shape[1]), int(self.score_map.shape[0])],
            "boxes": self.boxes.to_json(),
            "phrases": [str(p) for p in self.boxes.phrases],
            "scores": self.boxes.score_list(),
            "removed_boxes": self.removed_boxes.to_json(),
            "object_box": self.object_box.to_json() if self.object_box else None,
            "notes": self.notes,
        }


class DetectorLike(Protocol):
    """An open-vocabulary detector (Grounding DINO, MM-Grounding-DINO, OWLv2) as Stage 1 and 2 use it."""

    model_id: str

    def detect(
        self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float
    ) -> Detections:
        """Boxes found in `rgb`, each with the phrase that found it and its score; no masks.

        Args:
            rgb: (H, W, 3) uint8 image.
            phrases: the prompt phrases (defect words, or the object tag alone).
            box_threshold, text_threshold: the detector's thresholds (OWLv2 has no text threshold).
        Returns:
            Detections with xyxy (N, 4) in pixels of `rgb`, not clipped to it (the paper profile clips
            right before SAM, as the official code). Long phrase lists are split
            into chunks that fit the text encoder; NMS is NOT applied here.
        """
        ...


class SegmenterLike(Protocol):
    """A box-prompted segmenter (SAM, SAM-HQ) as Step 2-3 uses it."""

    def segment(self, rgb: np.ndarray, boxes: Detections | np.ndarray) -> np.ndarray:
        """One mask per box.

        Args:
            rgb: (H, W, 3) uint8 image.
            boxes: Detections, or an (N, 4) array of pixel xyxy of `rgb`.
        Returns:
            (N, H, W) bool masks, in the order of the boxes.
        """
        ...
