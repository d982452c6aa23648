"""`--export coco`: the run's defects as COCO instance segmentation (OUT/annotations.json).

Why: an inspector corrects predictions in CVAT or Label Studio, which import COCO. Each connected region
of an image's written mask (NAME_mask.png) is one instance: an RLE mask (pycocotools encoding), its
bbox, its score (the highest score-map value inside it) and the phrase of the kept box overlapping it
most as category (the offline profile's phrases describe the region: tone, shape, size). The instances of an image are disjoint
and together decode to exactly its mask PNG. Images without defects are listed with no annotation.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import find_objects, label

from iapas.errors import SettingsError
from iapas.io.atomic import atomic_write_json
from iapas.io.images import load_mask
from iapas.io.scoremaps import load_score_map
from iapas.outputs.writer import RunSummary

FALLBACK_PHRASE = "defect"


def _pycocotools_mask() -> Any:
    try:
        from pycocotools import mask as mask_utils  # pycocotools: optional, the [export] extra (--export coco)
    except ImportError:
        raise SettingsError("--export coco needs pycocotools: pip install 'iapas[export]' (or pip install pycocotools)") from None
    return mask_utils


def _phrase_for(region: np.ndarray, boxes: list[dict[str, Any]]) -> tuple[str, float | None]:
    """Phrase and score of the kept box covering most pixels of `region` (fallback: 'defect', None)."""
    best, best_px = None, 0
    for b in boxes:
        x0, y0, x1, y1 = (int(round(float(v))) for v in b.get("xyxy", (0, 0, 0, 0)))
        px = int(region[max(0, y0):max(0, y1), max(0, x0):max(0, x1)].sum())
        if px > best_px or (px == best_px and px and best is not None and b.get("score", 0) > best.get("score", 0)):
            best, best_px = b, px
    if best is None:
        return FALLBACK_PHRASE, None
    return str(best.get("phrase") or FALLBACK_PHRASE), float(best.get("score", 0.0))


def image_instances(mask: np.ndarray, score_map: np.ndarray | None, boxes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One COCO-style instance (without ids) per 8-connected region of `mask`.

    Args:
        mask: (H, W) bool defect mask.
        score_map: (H, W) score map (a region's score is its maximum, clipped to [0, 1]), or None to use the
            score of the box the region overlaps most.
        boxes: the prediction's boxes as JSON dicts (phrase, score, xyxy).
    Returns:
        One dict per region: RLE segmentation, area, bbox (x, y, w, h), phrase, score, iscrowd.
    """
    mask_utils = _pycocotools_mask()
    m = np.asarray(mask, dtype=bool)
    labels, n = label(m, structure=np.ones((3, 3), dtype=int))
    out = []
    for i, sl in enumerate(find_objects(labels), start=1):
        if sl is None:
            continue
        region = labels == i
        rle = mask_utils.encode(np.asfortranarray(region.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        phrase, box_score = _phrase_for(region, boxes)
        if score_map is not None and score_map.shape == region.shape:
            score = float(np.clip(score_map[region].max(), 0.0, 1.0))
        else:
            score = box_score if box_score is not None else 1.0
        ys, xs = sl
        out.append({"segmentation": rle, "area": int(region.sum()), "phrase": phrase, "score": round(score, 6),
                    "bbox": [int(xs.start), int(ys.start), int(xs.stop - xs.start), int(ys.stop - ys.start)],
                    "iscrowd": 0})
    return out


def coco_document(out: Path, summary: RunSummary) -> dict[str, Any]:
    """The COCO dict of every processed image of the run in OUT."""
    images, annotations, categories = [], [], {}
    for item in summary.items.values():
        if item.get("status") != "ok" or not item.get("name"):
            continue
        name = item["name"]
        try:
            meta = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
            mask = load_mask(out / f"{name}_mask.png")
        except (OSError, ValueError, Exception):  # noqa: BLE001 - a vanished file drops this image only
            continue
        map_file = (meta.get("files") or {}).get("score_map")
        try:
            score_map = load_score_map(out / map_file) if map_file else None
        except (OSError, ValueError, KeyError):
            score_map = None  # without a map (--maps none) an instance takes its box's score
        h, w = mask.shape
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": item.get("path", name), "width": int(w), "height": int(h),
                       "iapas_name": name, "verdict": item.get("verdict"), "image_score": item.get("image_score")})
        for inst in image_instances(mask, score_map, meta.get("boxes") or []):
            cat = categories.setdefault(inst.pop("phrase"), len(categories) + 1)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat, **inst})
    return {
        "info": {"description": f"iapas predictions ({summary.profile} profile)", "version": "1.0",
                 "threshold": summary.threshold},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": "defect"} for n, i in categories.items()],
    }


def write_coco(out: Path, summary: RunSummary) -> Path:
    """Write OUT/annotations.json; return its path."""
    return atomic_write_json(out / "annotations.json", coco_document(out, summary))
