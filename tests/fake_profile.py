"""A tiny, real profile for CLI tests that must not pay for model loading.

`MeanDiffProfile` scores each pixel by how far its grey level is from the mean grey level of the normal
images: crude, but a real computation whose output depends on the input, so the CLI, writer and resume
logic are exercised end to end. It is a registered profile (`mean-diff`), found by name through the real
registry; `use_mean_diff(monkeypatch)` registers it under the built-in names too, each copy keeping what
the built-in declares (models, threshold and display scale), so `--profile offline` runs it.
"""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.io.images import LoadedImage
from iapas.profiles.base import Profile
from iapas.profiles.registry import register_profile
from iapas.settings import resolve
from iapas.types import Box, Prediction

BUILT_IN = ("offline", "paper", "fused")
# what a stand-in copies from a built-in (its batch mode excepted)
DECLARED = ("models", "map_scale", "tag_meaning", "uses_dataset_kind", "check_config")


class MeanGrey(BaseModel):
    """The fake profile's section of the context."""

    mean_grey: float


@register_profile("mean-diff")
class MeanDiffProfile(Profile):
    """Stage 1: mean grey of the normal images; Stage 2: |grey - mean| as the score map."""

    section = MeanGrey
    instances = 0
    predictions = 0

    def __init__(self, settings) -> None:  # noqa: ANN001 - iapas.settings.Settings
        super().__init__(settings)
        MeanDiffProfile.instances += 1

    def fit(self, normal: list[LoadedImage]) -> Context:
        settings = self.settings
        mean = float(np.mean([im.rgb.mean() for im in normal])) / 255.0
        return Context(
            profile=self.name,
            config=settings.record,
            normal_images=[im.path for im in normal],
            seed=settings.seed,
            object_tag="test object",
            final_prompt=["abnormal", "defect"],
            thresholds=settings.thresholds,
            extension=MeanGrey(mean_grey=mean).model_dump(),
        )

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        MeanDiffProfile.predictions += 1
        grey = image.rgb.astype(np.float32).mean(axis=2) / 255.0
        mean = self.section_of(context).mean_grey  # type: ignore[union-attr]
        score = np.clip(np.abs(grey - float(mean)), 0.0, 1.0).astype(np.float32)
        mask = score > 0.5
        boxes = []
        if mask.any():
            ys, xs = np.nonzero(mask)
            boxes.append(Box((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)), "defect",
                             float(score[mask].mean())))
        return Prediction(path=image.path, score_map=score, mask=mask, boxes=boxes,
                          image_score=float(score.max()), profile=self.name)


def stand_in(cls: type[MeanDiffProfile], name: str) -> type[MeanDiffProfile]:
    """A subclass of `cls` that declares what the built-in profile `name` declares, with no batch mode."""
    from iapas.profiles.registry import profile_class

    real = profile_class(name)
    return type(f"{cls.__name__}As{name.title()}", (cls,), {k: getattr(real, k) for k in DECLARED} | {"name": name})


def mean_diff(config: PipelineConfig, name: str = "offline") -> MeanDiffProfile:
    """A MeanDiffProfile standing in for `name`, with the settings of `config`."""
    return stand_in(MeanDiffProfile, name)(resolve(config))


def use_mean_diff(monkeypatch: pytest.MonkeyPatch, cls: type[MeanDiffProfile] = MeanDiffProfile) -> None:
    """Register `cls` under every built-in profile name (undone by monkeypatch), so the CLI builds it through
    the registry (`profile_class`, `make_runner`, `resolve`) whatever `--profile` says."""
    import iapas.profiles.registry as registry

    MeanDiffProfile.instances = 0
    MeanDiffProfile.predictions = 0
    replacements = {name: stand_in(cls, name) for name in BUILT_IN}
    for name, sub in replacements.items():
        monkeypatch.setitem(registry._REGISTRY, name, sub)
