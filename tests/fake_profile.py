"""A tiny, real profile for CLI tests that must not pay for model loading.

`MeanDiffProfile` scores each pixel by how far its grey level is from the mean grey level of the normal
images: crude, but a real computation whose output depends on the input, so the CLI, writer and resume
logic are exercised end to end. `use_mean_diff(monkeypatch)` routes every profile name to it.
"""
from __future__ import annotations

import numpy as np
import pytest

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.io.images import LoadedImage
from iapas.types import Box, Prediction


class MeanDiffProfile:
    """Stage 1: mean grey of the normal images; Stage 2: |grey - mean| as the score map."""

    instances = 0
    predictions = 0

    def __init__(self, config: PipelineConfig, name: str) -> None:
        MeanDiffProfile.instances += 1
        self.config = config
        self.name = name

    def fit(self, normal: list[LoadedImage]) -> Context:
        config = self.config
        mean = float(np.mean([im.rgb.mean() for im in normal])) / 255.0
        return Context(
            profile=self.name,
            config=config,
            normal_images=[im.path for im in normal],
            seed=config.seed,
            object_tag="test object",
            final_prompt=["abnormal", "defect"],
            reference={"mean_grey": mean},
        )

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        MeanDiffProfile.predictions += 1
        grey = image.rgb.astype(np.float32).mean(axis=2) / 255.0
        score = np.clip(np.abs(grey - float(context.reference.get("mean_grey"))), 0.0, 1.0).astype(np.float32)
        mask = score > 0.5
        boxes = []
        if mask.any():
            ys, xs = np.nonzero(mask)
            boxes.append(Box((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)), "defect",
                             float(score[mask].mean())))
        return Prediction(path=image.path, score_map=score, mask=mask, boxes=boxes,
                          image_score=float(score.max()), profile=self.name)


def use_mean_diff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `iapas.pipeline.make_runner` build MeanDiffProfile for any profile name."""
    import iapas.pipeline

    MeanDiffProfile.instances = 0
    MeanDiffProfile.predictions = 0
    monkeypatch.setattr(iapas.pipeline, "make_runner", lambda profile, config: MeanDiffProfile(config, profile))
