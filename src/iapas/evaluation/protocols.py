"""The two evaluation protocols and the metrics of one category under each.

standard (the field's protocol): every test image, normal ones included, raw score maps resized
    bilinearly to the evaluation size (256 px by default), exact F1-max over all thresholds.
paper (the official IAP-AS evaluation, github sybeam27/IAP-ZSAS test_zsas.py + utils/function.py):
    - selection: the reader's official rule (`DatasetSplit.paper_test` / `data.base.official_keep`):
      only test folders literally named `good` and images without a mask file are skipped, so MTD
      keeps MT_Free, KSDD1 its defect-free parts, MVTec-AD its good images; MPDD, DTD-Synthetic and
      BTAD lose their normal test images;
    - every map min-max normalised on its own at full resolution right after prediction (a constant
      map becomes all zeros);
    - maps resized to 400 x 400 with OpenCV bicubic, masks with nearest neighbour;
    - the category's maps min-max normalised together; image score = max of that map;
    - AP over all pixels (scikit-learn's definition), F1-max over np.linspace(0, 1, 100) with >=;
    - the dataset figure is the mean over categories.
    Its numbers are not comparable with standard ones; every output says which protocol made it.

Exactness of the cached form: a record stores the raw map already resized (bicubic for paper) plus
the raw map's full-resolution min and max. Bicubic resizing is linear with weights summing to one,
so normalising the resized raw map with the full-resolution range equals resizing the normalised map.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from iapas.evaluation.operating import OPERATING_KEYS, OperatingPoint, operating_metrics
from iapas.metrics import aupro, pixel_metrics

PROTOCOLS = ("standard", "paper")
METRIC_KEYS = (
    "pixel_ap", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_ap", "image_auroc", "image_f1_max",
)
# paper protocol, maps as the tool decides them: a part judged ok reads as an all-zero map (as the paper's own
# maps are when no box is kept); the figures above read every raw map
DECIDED_KEYS = ("pixel_ap_decided", "pixel_f1_max_decided")
ALL_KEYS = METRIC_KEYS + OPERATING_KEYS + DECIDED_KEYS
PAPER_THRESHOLDS = 100
PAPER_EVAL_SIZE = 400
STANDARD_EVAL_SIZE = 256
RESAMPLE = {"standard": "bilinear", "paper": "cubic"}
PROTOCOL_NOTES = {
    "standard": "standard protocol: all test images including normal ones, raw score maps, exact F1-max",
    "paper": (
        "paper protocol (the official IAP-AS evaluation code): the official image selection (only folders named "
        "`good` and images without a mask file are skipped), each map min-max normalised on its own, 400x400 "
        "bicubic maps / nearest masks, category maps min-max normalised together, F1-max over 100 fixed "
        "thresholds; not comparable with standard-protocol numbers"
    ),
}


def default_eval_size(protocol: str) -> int:
    """400 px under the paper protocol (the official eval_resolution), 256 px under the standard one."""
    return PAPER_EVAL_SIZE if protocol == "paper" else STANDARD_EVAL_SIZE


def minmax_per_image(maps: np.ndarray, ranges: np.ndarray | None = None) -> np.ndarray:
    """Normalise each map to [0, 1] on its own, in place; constant maps become all zero.

    Args:
        maps: (N, H, W) float32 maps, modified in place.
        ranges: optional (N, 2) [min, max] of each map at full resolution (the official code
            normalises before resizing); by default each map's own min and max.
    Returns:
        `maps`.
    """
    for i, m in enumerate(maps):
        lo, hi = (float(ranges[i][0]), float(ranges[i][1])) if ranges is not None else (float(m.min()), float(m.max()))
        _stretch(m, lo, hi)
    return maps


def minmax_together(maps: np.ndarray) -> np.ndarray:
    """Normalise all maps of a category with one min and max, in place (official `normalize(list)`)."""
    if maps.size:
        _stretch(maps, float(maps.min()), float(maps.max()))
    return maps


def _stretch(a: np.ndarray, lo: float, hi: float) -> None:
    """Map [lo, hi] to [0, 1] in place; all zeros when hi <= lo (the official `normalize`)."""
    if hi > lo:
        a -= lo
        a /= hi - lo
    else:
        a[...] = 0.0


def paper_maps(maps: np.ndarray, ranges: np.ndarray | None) -> np.ndarray:
    """The official normalisation of a category's resized maps: per map, then all together (in place)."""
    return minmax_together(minmax_per_image(maps, ranges))


def category_metrics(
    maps: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    image_scores: np.ndarray,
    protocol: str,
    ranges: np.ndarray | None = None,
    point: OperatingPoint | None = None,
) -> dict[str, Any]:
    """All metrics of one category.

    Args:
        maps: (N, S, S) float32 raw maps at the evaluation size; normalised in place under `paper`.
        masks: (N, S, S) bool ground truth.
        labels: (N,) 1 for anomalous images.
        image_scores: (N,) the profile's image scores (standard protocol).
        protocol: "standard" or "paper".
        ranges: (N, 2) full-resolution [min, max] of each raw map (paper protocol).
        point: the context's verdict and mask thresholds (operating-point figures; NaN without them).
    Returns:
        metric name -> value (fractions), plus n_images, n_anomalous and notes.
    """
    notes: list[str] = []
    out: dict[str, Any] = {"n_images": int(labels.size), "n_anomalous": int(labels.sum())}
    if labels.size == 0:
        nan = float("nan")
        out.update({k: nan for k in METRIC_KEYS})
        out["notes"] = ["no evaluated images"]
        return out
    out.update(operating_metrics(maps, masks, labels, image_scores, point))  # raw maps, the profile's own scores
    judged_ok = image_scores < point.verdict if point is not None else None
    if protocol == "paper":
        paper_maps(maps, ranges)
        image_scores = maps.reshape(maps.shape[0], -1).max(axis=1).astype(np.float64)
    px = pixel_metrics(maps.ravel(), masks.ravel(), f1_grid=PAPER_THRESHOLDS if protocol == "paper" else None)
    notes += [f"pixel: {n}" for n in px["notes"]]
    out["pixel_ap"] = px["ap"]
    out["pixel_auroc"] = px["auroc"]
    out["pixel_f1_max"] = px["f1_max_grid"] if protocol == "paper" else px["f1_max"]
    out["pixel_aupro"] = aupro(maps, masks)
    if np.isnan(out["pixel_aupro"]):
        notes.append("pixel: AUPRO undefined (no defect region or no normal pixel)")
    im = pixel_metrics(image_scores, labels)
    if im["n_neg"] == 0:
        # AP and F1 would be a trivial 1.0 without a single normal image to rank against
        notes.append("image: no normal test image, image-level metrics are undefined (NaN)")
        im["ap"] = im["auroc"] = im["f1_max"] = float("nan")
    else:
        notes += [f"image: {n}" for n in im["notes"]]
    out["image_ap"], out["image_auroc"], out["image_f1_max"] = im["ap"], im["auroc"], im["f1_max"]
    if protocol == "paper" and judged_ok is not None:
        # per-image then together min-max of a zeroed map is zero, so zeroing after normalising is the same
        maps[judged_ok] = 0.0
        minmax_together(maps)
        dec = pixel_metrics(maps.ravel(), masks.ravel(), f1_grid=PAPER_THRESHOLDS)
        out["pixel_ap_decided"], out["pixel_f1_max_decided"] = dec["ap"], dec["f1_max_grid"]
    out["notes"] = notes
    return out
