"""What every profile implements: fit Stage 1 on normal images, predict Stage 2 on one image."""
from __future__ import annotations

from typing import Protocol

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.io.images import LoadedImage
from iapas.types import Box, Prediction

import numpy as np


class ProfileRunner(Protocol):
    """A profile holds its loaded models (loaded once per process) and runs both stages."""

    name: str

    def fit(self, normal: list[LoadedImage], config: PipelineConfig) -> Context:
        """Stage 1 on the sampled normal images (already chosen with config.seed)."""
        ...

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        """Stage 2 on one image."""
        ...


class DetectorLike(Protocol):
    """An open-vocabulary detector (Grounding DINO, MM-Grounding-DINO, OWLv2) as Stage 1 and 2 use it."""

    model_id: str

    def detect(
        self, rgb: "np.ndarray", phrases: list[str], box_threshold: float, text_threshold: float
    ) -> list["Box"]:
        """Boxes in pixel xyxy of `rgb` (HxWx3 uint8), each with the phrase that found it and its score.

        Long phrase lists are split into chunks that fit the text encoder; NMS is NOT applied here.
        """
        ...
