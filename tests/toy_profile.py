"""A profile registered from the test folder alone (no edit under src/): `IAPAS_PROFILE_MODULES=toy_profile`.

Stage 1 keeps the normal images' mean grey level and its spread; Stage 2 scores each pixel by its distance
from that mean in units of the spread. It declares its own decision threshold and display scale, needs no
model and has no batch mode, so the tests can check that the rest of iapas asks the class, never its name.
"""
from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from iapas.context import Context
from iapas.io.images import LoadedImage
from iapas.profiles.base import Profile
from iapas.profiles.registry import register_profile
from iapas.types import Detections, Prediction

TOY_THRESHOLD = 0.3
TOY_TOP = 0.45


class GreyLevel(BaseModel):
    """The toy profile's section of the context."""

    mean: float = Field(ge=0.0, le=1.0)
    spread: float = Field(gt=0.0)


@register_profile("toy")
class ToyProfile(Profile):
    """|grey - mean| / (16 x spread), clipped to [0, 1]; one region around the peak when it passes the threshold."""

    section = GreyLevel
    tag_meaning = "the toy profile's brightest deviation"

    @classmethod
    def default_threshold(cls, context: Context) -> float:
        return TOY_THRESHOLD

    @classmethod
    def default_rule(cls, context: Context) -> str:
        return f"toy: score {TOY_THRESHOLD:g}"

    @classmethod
    def display_scale(cls, threshold: float) -> tuple[float, float]:
        return float(threshold), TOY_TOP

    def fit(self, normal: list[LoadedImage]) -> Context:
        greys = np.concatenate([(im.rgb.astype(np.float32).mean(axis=2) / 255.0).ravel() for im in normal])
        section = GreyLevel(mean=float(greys.mean()), spread=max(float(greys.std()), 1e-3))
        return Context(profile=self.name, config=self.settings.record, seed=self.settings.seed,
                       normal_images=[im.path for im in normal], extension=section.model_dump())

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        level = self.section_of(context)
        assert isinstance(level, GreyLevel)
        grey = image.rgb.astype(np.float32).mean(axis=2) / 255.0
        score = np.clip(np.abs(grey - level.mean) / (16.0 * level.spread), 0.0, 1.0).astype(np.float32)
        mask = score >= TOY_THRESHOLD
        boxes = Detections.empty()
        if mask.any():
            ys, xs = np.nonzero(mask)
            xyxy = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)
            boxes = Detections(xyxy=xyxy, scores=np.array([float(score.max())]), phrases=["toy deviation"])
        return Prediction(path=image.path, score_map=score, mask=mask, boxes=boxes, image_score=float(score.max()),
                          profile=self.name)
