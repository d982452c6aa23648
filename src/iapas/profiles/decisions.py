"""From a calibrated map to a prediction, shared by the offline profile and its zero-shot batch runner.

One rule (`prediction_from_map`) turns a map into a verdict, a mask and regions, so a profile's prediction
already follows its verdict; the context's thresholds record (`thresholds_of`, `decision_of`) is read and
written here.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from iapas.context import Context
from iapas.errors import SettingsError
from iapas.settings import Calibration, Thresholds
from iapas.stages.calibration import Decision
from iapas.stages.mask_rule import defect_pixels, min_region_area
from iapas.stages.regions import mask_regions
from iapas.types import Detections, Prediction

def calibration_of(context: Context) -> Calibration:
    """The context's calibration, which Stage 2 of a few-shot context cannot do without."""
    cal = context.reference.calibration
    if cal is None or cal.threshold is None:
        raise SettingsError("the context holds no calibrated mask threshold (reference.mask_threshold); rerun `iapas prompts`")
    return cal


def thresholds_of(decision: Decision) -> Thresholds:
    """The context's thresholds record of a decision."""
    return Thresholds(verdict=round(decision.verdict, 6), verdict_rule=decision.rule, mask=round(decision.mask, 6),
                      mask_relative=decision.mask_relative, target_frr=decision.target_frr,
                      mask_plateau=decision.mask_plateau)


def decision_of(context: Context) -> Decision:
    """The context's verdict and mask thresholds; contexts made before they existed judge at the mask
    threshold (score 0.5) for both, as they did."""
    th = context.thresholds
    verdict = th.verdict if th is not None and th.verdict is not None else 0.5
    mask = th.mask if th is not None and th.mask is not None else min(0.5, verdict)
    relative = th.mask_relative if th is not None and th.mask_relative is not None else 0.0
    rule = (th.verdict_rule if th is not None and th.verdict_rule else "score 0.5 (the pixel threshold)")
    return Decision(verdict=float(verdict), mask=float(mask), mask_relative=float(relative), rule=rule,
                    target_frr=float(th.target_frr) if th is not None and th.target_frr else float("nan"),
                    mask_plateau=th.mask_plateau if th is not None else None)


def prediction_from_map(path: str, score: np.ndarray, profile: str, notes: list[str],
                        decision: Decision | None = None, rgb: np.ndarray | None = None) -> Prediction:
    """Verdict, mask, regions and image score (the map's maximum) of a calibrated map, from one rule.

    A part whose peak is under the verdict threshold has no region and an all-zero mask (its map keeps its
    values, for analysis). A defect's mask holds the pixels of `stages.mask_rule.defect_pixels` in components of at least
    the minimum region size; when none is that large, the component holding the peak is kept, so a defect
    always has a region. With the image `rgb`, each region's phrase describes it
    (stages.regions.describe_region).

    Args:
        path: the image's path, for the prediction.
        score: (H, W) float32 calibrated map (0.5 = the calibrated limit).
        profile: the name the prediction is made under.
        notes: notes to carry.
        decision: verdict and mask thresholds (None: 0.5 for both).
        rgb: (H, W, 3) uint8 image, or None.

    Returns:
        The prediction: the map, its (H, W) bool mask, regions and the image score (the map's maximum).
    """
    decision = decision or Decision(verdict=0.5, mask=0.5, mask_relative=0.0, rule="", target_frr=float("nan"))
    peak = float(score.max()) if score.size else 0.0
    if peak < decision.verdict or score.size == 0:
        return Prediction(path=path, score_map=score, mask=np.zeros(score.shape, dtype=bool), boxes=Detections.empty(),
                          image_score=peak, profile=profile, notes=list(notes))
    pixels = defect_pixels(score, peak, decision.mask, decision.mask_relative, decision.mask_plateau)
    boxes, mask = mask_regions(score, pixels, min_area=min_region_area(score.size), rgb=rgb)
    if len(boxes) == 0:  # every component under the size floor: keep the one holding the peak
        boxes, mask = peak_region(score, pixels, rgb)
    return Prediction(path=path, score_map=score, mask=mask, boxes=boxes, image_score=peak,
                      profile=profile, notes=list(notes))


def peak_region(score: np.ndarray, pixels: np.ndarray, rgb: np.ndarray | None = None) -> tuple[Detections, np.ndarray]:
    """The connected component of the defect pixels that holds the map's peak, as one region.

    Args:
        score: (H, W) float32 calibrated map.
        pixels: (H, W) bool defect pixels of that map (`stages.mask_rule.defect_pixels`).
        rgb: (H, W, 3) uint8 image, for the region's description, or None.

    Returns:
        (one region, its (H, W) bool mask).
    """
    labels, _ = ndimage.label(pixels, structure=np.ones((3, 3), dtype=bool))
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    only = labels == labels[y, x] if labels[y, x] else np.zeros(score.shape, dtype=bool)
    if not only.any():
        only[y, x] = True
    return mask_regions(score, only, min_area=1, rgb=rgb)
