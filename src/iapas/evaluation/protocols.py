"""The two evaluation protocols and the metrics of one category under each.

standard (the field's protocol): every test image, normal ones included, raw score maps resized
    bilinearly to the evaluation size (256 px by default), exact F1-max over all thresholds.
paper (the official IAP-AS evaluation, github sybeam27/IAP-ZSAS test_zsas.py + utils/function.py):
    - selection: the reader's official rule (`DatasetSplit.paper_test` / `data.base.official_keep`):
      only test folders literally named `good` and images without a mask file are skipped, so MTD
      keeps MT_Free (its Stage 1 tiles included), KSDD1 its defect-free parts, MVTec-AD its good images;
      MPDD, DTD-Synthetic and BTAD lose their normal test images;
    - ground truth: the mask's 8-bit grey level > 128 (`cv2.threshold(gt, 128, ...)`), masks resized
      with nearest neighbour;
    - every map min-max normalised on its own at full resolution in float64 right after prediction
      (a constant map becomes all zeros; the "base" row skips this step, as the official `base` model),
      then resized to 400 x 400 with OpenCV bicubic, still in float64 (`official_map`);
    - the category's maps min-max normalised together; image score = max of that map;
    - AP over all pixels (scikit-learn's definition), F1-max over np.linspace(0, 1, 100) with >=; a
      category without a defect pixel scores AP 0 and F1-max 0 (scikit-learn's and the official loop's value);
    - the dataset figure is the mean over categories of each category's value rounded to 2 decimals (in %).
    Its numbers are not comparable with standard ones; every output says which protocol made it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from iapas.evaluation.resample import resize_map
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
        "`good` and images without a mask file are skipped; MTD's Stage 1 tiles are scored too), masks grey > 128, "
        "each map min-max normalised on its own at full size in float64 (not the base row), 400x400 bicubic maps / "
        "nearest masks, category maps min-max normalised together, F1-max over 100 fixed thresholds, mean of "
        "category values rounded to 2 decimals (a category without defect pixels counts AP 0); not comparable "
        "with standard-protocol numbers"
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


def official_map(raw: np.ndarray, size: int, per_image: bool = True) -> np.ndarray:
    """One prediction as the official code keeps it for evaluation: (size, size) float64.

    The raw HxW map in float64, min-max normalised on its own at full resolution (`normalize(score)`;
    skipped for the "base" row, whose official maps stay raw), then resized with OpenCV bicubic in
    float64 (`process_specify_resolution`). Normalising before resizing, in double precision, keeps the
    official order of tied pixels in flat regions.
    """
    m = np.array(raw, dtype=np.float64)
    if per_image:
        _stretch(m, float(m.min()), float(m.max()))
    return resize_map(m, size, "cubic", dtype=np.float64)


def paper_maps(maps: np.ndarray, ranges: np.ndarray | None) -> np.ndarray:
    """The official normalisation of a category's resized maps, in place.

    Args:
        maps: (N, S, S) maps: the official per-image maps (`official_map`) when `ranges` is None, else
            raw resized maps of records written before `official_map` existed.
        ranges: (N, 2) full-resolution [min, max] of each raw map, or None.
    Returns:
        `maps`, min-max normalised over the whole category (after the per-map step for raw maps).
    """
    if ranges is not None:
        minmax_per_image(maps, ranges)
    return minmax_together(maps)


def zero_when_undefined(out: dict[str, Any], n_defect_pixels: int, notes: list[str]) -> None:
    """Paper protocol: AP and F1-max of a class-less category count as 0, as in the official loop.

    scikit-learn's AP and the official `calculate_max_f1` both give 0 when there is no positive; the
    official mean then averages that 0 with the other categories.
    """
    for level, count in (("pixel", n_defect_pixels), ("image", out["n_anomalous"])):
        if count == 0:
            for key in (f"{level}_ap", f"{level}_f1_max"):
                out[key] = 0.0
            notes.append(f"{level}: no {'defect pixel' if level == 'pixel' else 'anomalous image'}: AP and F1-max "
                         "count as 0 in the mean (official rule)")


def image_metrics(image_scores: np.ndarray, labels: np.ndarray, notes: list[str]) -> dict[str, float]:
    """Image-level AP, AUROC and F1-max; NaN (with a note) when no normal test image is there to rank against.

    Args:
        image_scores: (N,) image scores.
        labels: (N,) 1 for anomalous images.
        notes: receives the notes of the computation.

    Returns:
        image_ap, image_auroc, image_f1_max.
    """
    im = pixel_metrics(image_scores, labels)
    if im["n_neg"] == 0:
        # AP and F1 would be a trivial 1.0 without a single normal image to rank against
        notes.append("image: no normal test image, image-level metrics are undefined (NaN)")
        im["ap"] = im["auroc"] = im["f1_max"] = float("nan")
    else:
        notes += [f"image: {n}" for n in im["notes"]]
    return {"image_ap": im["ap"], "image_auroc": im["auroc"], "image_f1_max": im["f1_max"]}


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
        maps: (N, S, S) maps at the evaluation size: float32 raw maps (standard), float64 official
            per-image maps (paper, `official_map`); normalised over the category in place under `paper`.
        masks: (N, S, S) bool ground truth.
        labels: (N,) 1 for anomalous images.
        image_scores: (N,) the profile's image scores (standard protocol).
        protocol: "standard" or "paper".
        ranges: paper protocol, raw records only: (N, 2) full-resolution [min, max] of each raw map;
            None when `maps` are already the official per-image maps.
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
    out.update(image_metrics(image_scores, labels, notes))
    if protocol == "paper":
        zero_when_undefined(out, int(px["n_pos"]), notes)
    if protocol == "paper" and judged_ok is not None:
        # per-image then together min-max of a zeroed map is zero, so zeroing after normalising is the same
        maps[judged_ok] = 0.0
        minmax_together(maps)
        dec = pixel_metrics(maps.ravel(), masks.ravel(), f1_grid=PAPER_THRESHOLDS)
        out["pixel_ap_decided"], out["pixel_f1_max_decided"] = dec["ap"], dec["f1_max_grid"]
    out["notes"] = notes
    return out
