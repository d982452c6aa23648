"""What every profile implements: fit Stage 1 on normal images, predict Stage 2 on one image."""
from __future__ import annotations

from typing import Protocol

from iapas.context import Context
from iapas.io.images import LoadedImage
from iapas.types import Prediction


class ProfileRunner(Protocol):
    """A profile holds its settings (`iapas.settings.Settings`, given once to its constructor) and its
    loaded models (shared through the model caches), and runs both stages."""

    name: str

    def fit(self, normal: list[LoadedImage]) -> Context:
        """Stage 1 on the sampled normal images (already chosen with the settings' seed)."""
        ...

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        """Stage 2 on one image."""
        ...
