"""One uploaded image -> the JSON answer; the same loader, prediction and verdict as `iapas segment`.

The answer repeats what `segment` writes to NAME.json (rounded the same way), so the two can be compared
field by field, plus the verdict, its threshold, the region areas and, on request, the mask (PNG or COCO
RLE) and the overlay.
"""
from __future__ import annotations

import base64
import io
import os
import tempfile
from dataclasses import replace
from typing import Any

import numpy as np

from iapas.io.images import LoadedImage, load_image
from iapas.serve.lines import Line
from iapas.serve.workers import Result

MASK_FORMATS = ("png", "rle")


class TooManyPixels(Exception):
    """The image's header announces more pixels than the server accepts."""


def pixel_count(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header alone, or None when the header is not readable (the loader
    then gives the precise reason)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.size[0]), int(im.size[1])
    except Exception:  # noqa: BLE001 - any unreadable header is judged by load_image below
        return None


NAME_CHARS = 255  # of an upload's file name kept for answers and logs


def upload_name(filename: str | None) -> str:
    """The client's file name as it may appear in an answer: control characters (NUL included) dropped, cut
    short; "upload" when nothing is left."""
    text = "".join(ch for ch in (filename or "") if ch.isprintable())[:NAME_CHARS]
    return text or "upload"


def decode_upload(data: bytes, filename: str, max_pixels: int) -> LoadedImage:
    """Check the pixel count, then load with the CLI's loader (raises its InputError for bad images)."""
    size = pixel_count(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise TooManyPixels(f"image is {size[0]}x{size[1]} = {size[0] * size[1]} pixels; this server accepts up to "
                            f"{max_pixels} (--max-pixels)")
    # the temp file's suffix helps the loader name the format; only plain characters reach the file system
    suffix = "".join(ch for ch in os.path.splitext(filename or "")[1][:16] if ch.isalnum() or ch == ".")
    with tempfile.NamedTemporaryFile(prefix="iapas-upload-", suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        loaded = load_image(tmp.name)
    return replace(loaded, path=filename or "upload")


def regions(mask: np.ndarray) -> list[dict[str, Any]]:
    """Connected regions of the defect mask, largest first: area in pixels, fraction of the image, bbox."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return []
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    boxes = ndimage.find_objects(labels)
    total = float(mask.size)
    out = [
        {"area": int(areas[i]), "fraction": round(float(areas[i]) / total, 6),
         "bbox": [int(s[1].start), int(s[0].start), int(s[1].stop), int(s[0].stop)]}
        for i, s in enumerate(boxes)
    ]
    return sorted(out, key=lambda r: -r["area"])


def png_base64(array: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def encode_mask(mask: np.ndarray, fmt: str) -> dict[str, Any]:
    """The mask as a PNG (0/255, base64) or as COCO RLE (pycocotools, column-major counts)."""
    if fmt == "rle":
        from pycocotools import mask as coco_mask

        rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"format": "rle", "size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return {"format": "png", "data": png_base64(mask.astype(np.uint8) * 255)}


def decode_mask(encoded: dict[str, Any]) -> np.ndarray:
    """The inverse of `encode_mask` (for clients and tests): a HxW bool array."""
    if encoded["format"] == "rle":
        from pycocotools import mask as coco_mask

        rle = {"size": encoded["size"], "counts": encoded["counts"].encode("ascii")}
        return coco_mask.decode(rle).astype(bool)
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded["data"])))) > 0


def overlay_png(rgb: np.ndarray, result: Result, line: Line) -> str:
    """The same overlay `segment` writes (colours anchored at the line's threshold; plain tinted mask if
    drawing fails), as base64 PNG."""
    from iapas.outputs.overlay import render_overlay
    from iapas.outputs.writer import plain_overlay
    from iapas.verdict import display_top

    threshold = result.verdict.threshold
    try:
        image = np.asarray(render_overlay(rgb, result.prediction, scale=(threshold, display_top(line.context, threshold))))
    except Exception:  # noqa: BLE001 - a drawing problem must not cost the answer
        image = plain_overlay(rgb, result.prediction.mask)
    return png_base64(image)


def answer(line: Line, image: LoadedImage, result: Result, mask: str | None, overlay: bool,
           total_s: float) -> dict[str, Any]:
    """The JSON body of a successful inspection."""
    from iapas.outputs.run_items import verdict_fields

    pred = result.prediction
    # verdict, image_score, threshold, largest_region_area, top_phrase: as `segment` writes them to NAME.json
    body: dict[str, Any] = {"line": line.name, "context_id": line.context_id, **verdict_fields(pred, line.context)}
    meta = pred.to_json()
    for box in meta["boxes"]:
        x0, y0, x1, y1 = box["xyxy"]
        box["area"] = round(max(0.0, x1 - x0) * max(0.0, y1 - y0), 2)
    body.update({k: v for k, v in meta.items() if k != "image_score"})
    region_list = regions(pred.mask)
    body["regions"] = region_list
    body["defect_area"] = int(sum(r["area"] for r in region_list))
    body["original_size"] = [int(image.original_size[0]), int(image.original_size[1])]
    body["timing"] = {"queue_ms": round(result.queue_s * 1000, 2), "inference_ms": round(result.inference_s * 1000, 2),
                      "total_ms": round(total_s * 1000, 2), "device": result.device}
    if mask:
        body["mask"] = encode_mask(pred.mask, mask)
    if overlay:
        body["overlay"] = {"format": "png", "data": overlay_png(image.rgb, result, line)}
    return body
