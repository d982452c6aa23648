"""The two evaluation protocols and the metrics of one category under each.

standard (the field's protocol): every test image, normal ones included, raw score maps, exact
    F1-max over all thresholds.
paper (what the official IAP-AS code does): every map min-max normalised on its own, normal test
    images skipped on every dataset except MVTec-AD, F1-max over 100 fixed thresholds in [0, 1].
    Its numbers are not comparable with standard ones; every output says which protocol made it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from iapas.metrics import aupro, pixel_metrics
PROTOCOLS = ("standard", "paper")
METRIC_KEYS = (
    "pixel_ap", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_ap", "image_auroc", "image_f1_max",
)
PAPER_KEEPS_NORMALS = frozenset({"mvtec"})
PAPER_THRESHOLDS = 100
PROTOCOL_NOTES = {
    "standard": "standard protocol: all test images including normal ones, raw score maps, exact F1-max",
    "paper": (
        "paper protocol (reproduces the official IAP-AS evaluation code): each map min-max normalised on its "
        "own, normal test images skipped except on MVTec-AD, F1-max over 100 fixed thresholds; "
        "not comparable with standard-protocol numbers"
    ),
}


def minmax_per_image(maps: np.ndarray) -> np.ndarray:
    """Normalise each map to [0, 1] on its own, in place; constant maps become all zero."""
    for m in maps:
        lo, hi = float(m.min()), float(m.max())
        if hi > lo:
            m -= lo
            m /= hi - lo
        else:
            m[...] = 0.0
    return maps


def paper_selection(dataset: str, labels: np.ndarray) -> np.ndarray:
    """Which test images the paper protocol keeps."""
    if dataset in PAPER_KEEPS_NORMALS:
        return np.ones(labels.shape, dtype=bool)
    return labels.astype(bool)


def category_metrics(
    maps: np.ndarray, masks: np.ndarray, labels: np.ndarray, image_scores: np.ndarray, protocol: str
) -> dict[str, Any]:
    """All metrics of one category (maps: N x S x S float32, modified in place under `paper`)."""
    notes: list[str] = []
    out: dict[str, Any] = {"n_images": int(labels.size), "n_anomalous": int(labels.sum())}
    if labels.size == 0:
        nan = float("nan")
        out.update({k: nan for k in METRIC_KEYS})
        out["notes"] = ["no evaluated images"]
        return out
    if protocol == "paper":
        minmax_per_image(maps)
    px = pixel_metrics(maps.ravel(), masks.ravel(), f1_grid=PAPER_THRESHOLDS if protocol == "paper" else None)
    notes += [f"pixel: {n}" for n in px["notes"]]
    out["pixel_ap"] = px["ap"]
    out["pixel_auroc"] = px["auroc"]
    if protocol == "paper":
        out["pixel_f1_max"] = px["f1_max_grid"]
    else:
        out["pixel_f1_max"] = px["f1_max"]
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
    out["notes"] = notes
    return out
