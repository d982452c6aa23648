"""What a profile is: one class that runs both stages and declares what the rest of iapas asks of it.

Preflight, doctor, the verdict, the overlays and the evaluation ask the profile's class (found by name in
`profiles.registry`), never compare its name: the models it loads, its decision threshold and display
scale, whether it has a batch (zero-shot) mode, how the evaluation picks each category's kind, and the
pydantic model of its part of the context.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from iapas.context import Context
from iapas.io.images import LoadedImage
from iapas.types import Prediction

if TYPE_CHECKING:
    from pathlib import Path

    from iapas.config import PipelineConfig
    from iapas.settings import Settings

STAGE1_ROLES = frozenset({"tagger", "llm"})  # loaded by Stage 1 only (`iapas segment` loads neither)


class BatchRunner(ABC):
    """A profile's batch mode (zero-shot): no normal image, the images of one batch score each other.

    Args:
        settings: the run's resolved settings.
        profile: the name of the profile the context is written for.
    """

    def __init__(self, settings: Settings, profile: str) -> None:
        self.settings = settings
        self.profile = profile

    @staticmethod
    @abstractmethod
    def handles(context: Context) -> bool:
        """Whether `context` is a batch context of this runner (else the profile's few-shot Stage 2 reads it)."""

    def pool_indices(self, batch_size: int) -> list[int]:
        """Indices of the batch images `fit` uses (loaded once by the caller and passed to `fit`)."""
        return []

    @abstractmethod
    def fit(self, batch: list[Path], loaded: dict[int, LoadedImage] | None = None) -> Context:
        """The context of a batch (the images to score, no normal image).

        Args:
            batch: every image the context may be asked about.
            loaded: batch index -> the images of `pool_indices` the caller already loaded.
        """

    @abstractmethod
    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        """Stage 2 on one image of the context's batch.

        Args:
            image: the image, loaded once by the caller.
            context: a context this runner's `fit` made (`handles(context)` is True).

        Returns:
            The prediction: (H, W) float32 score map, (H, W) bool mask, regions, image score.
        """


class Profile(ABC):
    """A profile holds its settings (given once to its constructor) and its loaded models (shared through
    the model caches), and runs both stages.

    Class attributes:
        name: the registered name (`--profile NAME`), set by `registry.register_profile`.
        models: roles of the models it loads (detector, segmenter, tagger, llm, backbone); `preflight` checks exactly these.
        batch_runner: the class of its batch (zero-shot) mode, or None when it has none.
        section: the pydantic model of its own part of the context (`Context.reference` for the built-in
            visual profiles, `Context.extension` for others), or None.
        map_scale: "calibrated" (score 0.5 = the calibrated limit, maps saturate slowly) or "confidence"
            (box confidence x mask: any kept box is a defect); sets the display scale.
        tag_meaning: what the phrase on a region means, for the report.
        uses_dataset_kind: whether the evaluation gives it the reader's own kind per category (True) or the
            one of the texture preset (False).

    Args:
        settings: the settings resolved from the run's config (`iapas.settings.resolve`).
    """

    name: ClassVar[str] = ""
    models: ClassVar[frozenset[str]] = frozenset()
    batch_runner: ClassVar[type[BatchRunner] | None] = None
    section: ClassVar[type[BaseModel] | None] = None
    map_scale: ClassVar[str] = "calibrated"
    tag_meaning: ClassVar[str] = "kept regions with the phrase that found them"
    uses_dataset_kind: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def fit(self, normal: list[LoadedImage]) -> Context:
        """Stage 1 on the sampled normal images (already chosen with the settings' seed)."""

    @abstractmethod
    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        """Stage 2 on one image.

        Args:
            image: the image to check, as loaded (`io.images.load_image`).
            context: a context this profile's `fit` made (or loaded from context.json).

        Returns:
            The prediction: (H, W) float32 score map, (H, W) bool mask, regions, image score.
        """

    @classmethod
    def default_threshold(cls, context: Context) -> float:
        """The image-score threshold of a context that stores no calibrated verdict.

        Args:
            context: a context this profile made.

        Returns:
            0.5 (the calibrated limit) for calibrated maps; the box threshold for confidence maps.
        """
        th = context.thresholds
        if cls.map_scale == "confidence" and th is not None and th.box_threshold is not None:
            return float(th.box_threshold)
        return 0.5

    @classmethod
    def default_rule(cls, context: Context) -> str:
        """How `default_threshold` is made, in one sentence."""
        if cls.map_scale == "confidence":
            return "the box threshold: any kept box makes the part a defect"
        return "score 0.5: the pixel threshold (a context made before verdict calibration)"

    @classmethod
    def display_scale(cls, threshold: float) -> tuple[float, float]:
        """(threshold, top) of the overlay colours: colour starts at the threshold, full red at `top`.

        A calibrated score is d/(d+t), so its useful range is about 0.4-0.7: full red where the distance is
        twice the limit. Box confidences rarely pass 0.5: full red at 2.5 x the threshold.

        Args:
            threshold: the image-score threshold the maps are judged at.

        Returns:
            (threshold, top), top in (threshold, 1].
        """
        top = threshold + (1.0 - threshold) / 3.0 if cls.map_scale == "calibrated" else 2.5 * threshold
        return float(threshold), float(min(1.0, max(top, threshold + 0.05)))

    @classmethod
    def eval_kind(cls, reader_kind: str, preset_kind: str) -> str:
        """The kind (object / texture) the evaluation uses for one category.

        Args:
            reader_kind: the dataset reader's kind of the category.
            preset_kind: the kind `--texture-preset` gives it (`evaluation.presets.category_kind`).

        Returns:
            `reader_kind` for profiles whose presets were tuned per reader kind, else `preset_kind`.
        """
        return reader_kind if cls.uses_dataset_kind else preset_kind

    @classmethod
    def check_config(cls, config: PipelineConfig) -> None:
        """Raise SettingsError when `config` cannot work with this profile (before anything loads)."""

    @classmethod
    def section_of(cls, context: Context) -> BaseModel | None:
        """The profile's typed part of `context`: `context.reference` when `section` is its model, else
        `section` validated from `context.extension` (None for profiles without one)."""
        if cls.section is None:
            return None
        if isinstance(context.reference, cls.section):
            return context.reference
        return cls.section.model_validate(context.extension or {})


# The registry itself (name -> class); lookups, plugins and checks are in profiles.registry.
_REGISTRY: dict[str, type[Profile]] = {}


def register_profile(name: str) -> Callable[[type[Profile]], type[Profile]]:
    """Class decorator registering a profile under NAME (`--profile NAME`).

    Args:
        name: the profile's name; registering another class under a taken name replaces it.

    Returns:
        The decorator, which sets `cls.name` and returns the class unchanged.
    """

    def deco(cls: type[Profile]) -> type[Profile]:
        """Register `cls` under `name`."""
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco
