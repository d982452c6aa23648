"""The `fused` profile: the paper profile's text-found regions, re-scored by the visual reference prior.

Why: an open-vocabulary detector prompted with "defect" also fires on perfectly normal surface.
The offline profile's memory bank knows what normal looks like, so each region found by text keeps
its phrase but its score becomes

    s_i' = s_i * clip((mean_{p in m_i} d(p) - mu) / (t - mu), 0, 1)

where d is the nearest-neighbour distance to the normal bank, mu the mean distance of normal pixels
and t the mask threshold, both calibrated on the normal images (leave-one-out, see profiles/offline.py).
A region on normal-looking surface (d near mu) is suppressed; one on surface unlike any normal
(d at or above t) keeps its score.
The map is rebuilt as the paper's Step 2-4, sum_i s_i' * m_i (clipped to 1). m_i is the region's box
intersected with the paper map's support (the paper Prediction does not carry per-box masks).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from iapas.context import Context
from iapas.errors import SettingsError
from iapas.io.images import LoadedImage
from iapas.profiles.offline import OfflineProfile, calibration_of
from iapas.profiles.paper import PaperProfile
from iapas.settings import Settings
from iapas.types import Box, Prediction

PROFILE = "fused"
FUSION = ("score_i * clip((mean distance in region - normal_pixel_mean) / (mask_threshold - normal_pixel_mean), 0, 1)")


def region_mask(box: Box, support: np.ndarray) -> np.ndarray:
    """Pixels of `support` inside the box (pixel xyxy, exclusive right/bottom)."""
    h, w = support.shape
    x0, y0, x1, y1 = box.xyxy
    r0, r1 = int(np.clip(np.floor(y0), 0, h)), int(np.clip(np.ceil(y1), 0, h))
    c0, c1 = int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.ceil(x1), 0, w))
    out = np.zeros_like(support, dtype=bool)
    out[r0:r1, c0:c1] = support[r0:r1, c0:c1]
    return out


def rescore(pred: Prediction, raw: np.ndarray, threshold: float, normal_mean: float) -> tuple[list[Box], np.ndarray, list[float]]:
    """Re-scored boxes, the rebuilt map and each box's visual factor clip((mean d - mu) / (t - mu), 0, 1)."""
    span = max(threshold - normal_mean, 1e-12)
    support = pred.score_map > 0
    smap = np.zeros(pred.score_map.shape, dtype=np.float32)
    boxes, factors = [], []
    for b in pred.boxes:
        m = region_mask(b, support)
        if not m.any():  # degenerate region: judge the box area itself
            m = region_mask(b, np.ones_like(support))
        factor = float(np.clip((raw[m].mean() - normal_mean) / span, 0.0, 1.0)) if m.any() else 0.0
        nb = Box(b.xyxy, b.phrase, b.score * factor, b.removed_by)
        smap[m] += nb.score
        boxes.append(nb)
        factors.append(factor)
    return boxes, np.clip(smap, 0.0, 1.0), factors


class FusedProfile:
    """PaperProfile for regions and phrases, OfflineProfile's bank for the visual prior."""

    name = PROFILE

    def __init__(self, settings: Settings, detector: Any | None = None, segmenter: Any | None = None) -> None:
        self.settings = settings
        self.paper = PaperProfile(settings, detector=detector, segmenter=segmenter)
        self.offline = OfflineProfile(settings)

    def fit(self, normal: list[LoadedImage]) -> Context:
        """Paper Stage 1, plus the reference bank and its calibration on the same normal images."""
        ctx = self.paper.fit(normal)
        bank, reference, warnings = self.offline.build_reference(normal)
        ctx.warnings.extend(warnings)
        ctx.profile = PROFILE
        ctx.reference = reference.model_copy(update={"fusion": FUSION})
        ctx.models["backbone"] = {"id": bank.settings.backbone, "revision": "pypi"}
        ctx.set_arrays(bank_features=bank.features, bank_source=bank.source)
        return ctx

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        pred = self.paper.predict(image, context)
        raw = self.offline.reference_map(image, context)
        threshold = float(calibration_of(context).threshold)  # type: ignore[arg-type]
        normal_mean = context.reference.get("normal_pixel_mean")
        if normal_mean is None:
            raise SettingsError("the fused context holds no reference.normal_pixel_mean; rerun `iapas prompts --profile fused`")
        boxes, smap, factors = rescore(pred, raw, threshold, float(normal_mean))
        order = np.argsort([-b.score for b in boxes], kind="stable")
        notes = list(pred.notes)
        if boxes:
            notes.append("visual factors (0 = looks like the normal images, 1 = at or beyond the mask threshold): "
                         + ", ".join(f"{b.phrase} {f:.2f}" for b, f in zip(boxes, factors)))
        return Prediction(
            path=pred.path,
            score_map=smap,
            mask=smap > 0,
            boxes=[boxes[i] for i in order],
            image_score=float(smap.max()) if smap.size else 0.0,
            profile=PROFILE,
            removed_boxes=pred.removed_boxes,
            object_box=pred.object_box,
            notes=notes,
        )
