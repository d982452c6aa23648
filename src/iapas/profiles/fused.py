"""The `fused` profile: the paper profile's text-found regions, re-scored by the visual reference prior.

Why: an open-vocabulary detector prompted with "defect" also fires on perfectly normal surface.
The offline profile's memory bank knows what normal looks like, so each region found by text keeps
its phrase but its score becomes

    s_i' = s_i * clip((mean_{p in m_i} d(p) - mu) / (t - mu), 0, 1)

where d is the nearest-neighbour distance to the normal bank, mu the mean distance of normal pixels
and t the mask threshold, both calibrated on the normal images (leave-one-out, see profiles/offline.py).
A region on normal-looking surface (d near mu) is suppressed; one on surface unlike any normal
(d at or above t) keeps its score.
The map is rebuilt as the paper's Step 2-4, sum_i s_i' * m_i (clipped to 1), where m_i is box i's own SAM
mask, carried by the paper Prediction's Detections. A box whose mask is empty is judged on its box area,
and adds nothing to the map, as in the paper.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from iapas.context import Context
from iapas.errors import SettingsError
from iapas.config import PipelineConfig
from iapas.context import Reference
from iapas.io.images import LoadedImage
from iapas.profiles.base import Profile, register_profile
from iapas.profiles.decisions import calibration_of
from iapas.profiles.offline import OfflineProfile
from iapas.profiles.paper import PAPER_MODELS, PaperProfile, check_object_source
from iapas.settings import Settings
from iapas.stages.scoring import detections_map
from iapas.types import Detections, Prediction

PROFILE = "fused"
FUSION = ("score_i * clip((mean distance in region - normal_pixel_mean) / (mask_threshold - normal_pixel_mean), 0, 1)")


def box_mask(xyxy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The pixels inside one box, clipped to the image.

    Args:
        xyxy: (4,) box in pixels (exclusive right/bottom).
        shape: (H, W) of the image.

    Returns:
        (H, W) bool mask.
    """
    h, w = shape
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    r0, r1 = int(np.clip(np.floor(y0), 0, h)), int(np.clip(np.ceil(y1), 0, h))
    c0, c1 = int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.ceil(x1), 0, w))
    out = np.zeros(shape, dtype=bool)
    out[r0:r1, c0:c1] = True
    return out


def visual_factors(detections: Detections, raw: np.ndarray, threshold: float, normal_mean: float) -> np.ndarray:
    """(N,) float64 clip((mean d over m_i - mu) / (t - mu), 0, 1) per box, m_i its own SAM mask.

    Args:
        detections: N boxes with (N, H, W) masks.
        raw: (H, W) nearest-neighbour distance map d of the offline profile.
        threshold, normal_mean: t and mu, calibrated on the normal images.
    """
    if detections.masks is None and len(detections):
        raise ValueError("the fused profile needs the paper profile's per-box masks")
    span = max(threshold - normal_mean, 1e-12)
    factors = np.zeros(len(detections), dtype=np.float64)
    for i in range(len(detections)):
        m = detections.masks[i]  # type: ignore[index]
        if not m.any():  # SAM gave nothing: judge the box area itself
            m = box_mask(detections.xyxy[i], raw.shape)
        if m.any():
            factors[i] = float(np.clip((raw[m].mean() - normal_mean) / span, 0.0, 1.0))
    return factors


def rescore(pred: Prediction, raw: np.ndarray, threshold: float, normal_mean: float) -> tuple[Detections, np.ndarray, np.ndarray]:
    """The paper prediction's boxes re-scored by the visual prior, and the map rebuilt from them.

    Args:
        pred: the paper profile's prediction (N boxes with (N, H, W) masks).
        raw: (H, W) float32 nearest-neighbour distance map of the offline profile.
        threshold: t, the calibrated mask threshold (raw distance).
        normal_mean: mu, the mean raw distance of normal pixels.

    Returns:
        (re-scored detections, highest first, masks kept; (H, W) float32 map sum s_i' m_i clipped to [0, 1];
        (N,) float64 visual factor of each box, in the returned order).
    """
    factors = visual_factors(pred.boxes, raw, threshold, normal_mean)
    rescored = pred.boxes.with_scores(pred.boxes.scores.astype(np.float64) * factors)
    smap = detections_map(rescored, pred.score_map.shape, clip=True)
    order = rescored.argsort()
    return rescored[order], smap, factors[order]


@register_profile(PROFILE)
class FusedProfile(Profile):
    """PaperProfile for regions and phrases, OfflineProfile's bank for the visual prior."""

    models = PAPER_MODELS | OfflineProfile.models
    section = Reference
    map_scale = "confidence"

    def __init__(self, settings: Settings, detector: Any | None = None, segmenter: Any | None = None) -> None:
        super().__init__(settings)
        self.paper = PaperProfile(settings, detector=detector, segmenter=segmenter)
        self.offline = OfflineProfile(settings)

    @classmethod
    def check_config(cls, config: PipelineConfig) -> None:
        """Refuse `--tagger none` without `--object` before anything loads."""
        check_object_source(config)

    def fit(self, normal: list[LoadedImage]) -> Context:
        """Paper Stage 1, plus the reference bank and its calibration on the same normal images."""
        ctx = self.paper.fit(normal)
        fitted = self.offline.build_reference(normal)
        bank, reference = fitted.bank, fitted.reference
        ctx.warnings.extend(fitted.warnings)
        ctx.profile = PROFILE
        ctx.reference = reference.model_copy(update={"fusion": FUSION})
        ctx.models["backbone"] = {"id": bank.settings.backbone, "revision": "pypi"}
        ctx.set_arrays(bank_features=bank.features, bank_source=bank.source)
        return ctx

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        """The paper profile's prediction with each box re-scored by the visual prior, the map rebuilt.

        Args:
            image: the image to check.
            context: a fused context (paper Stage 1 plus the reference bank).

        Returns:
            The prediction: (H, W) float32 map in [0, 1], its (H, W) bool mask (map > 0), re-scored boxes.
        """
        pred = self.paper.predict(image, context)
        raw = self.offline.reference_map(image, context)
        threshold = float(calibration_of(context).threshold)  # type: ignore[arg-type]
        normal_mean = context.reference.get("normal_pixel_mean")
        if normal_mean is None:
            raise SettingsError("the fused context holds no reference.normal_pixel_mean; rerun `iapas prompts --profile fused`")
        boxes, smap, factors = rescore(pred, raw, threshold, float(normal_mean))
        notes = list(pred.notes)
        if len(boxes):
            notes.append("visual factors (0 = looks like the normal images, 1 = at or beyond the mask threshold): "
                         + ", ".join(f"{p} {f:.2f}" for p, f in zip(boxes.phrases, factors)))
        return Prediction(
            path=pred.path,
            score_map=smap,
            mask=smap > 0,
            boxes=boxes,
            image_score=float(smap.max()) if smap.size else 0.0,
            profile=PROFILE,
            removed_boxes=pred.removed_boxes,
            object_box=pred.object_box,
            notes=notes,
        )
