"""One uploaded image -> the JSON answer; the same loader, prediction and verdict as `iapas segment`.

The answer repeats what `segment` writes to NAME.json (rounded the same way), so the two can be compared
field by field, plus the verdict, its threshold, the region areas and, on request, the mask (PNG or COCO
RLE) and the overlay.

Huge uploads are scored smaller: an image whose loaded size (longest side at most `MAX_SIDE`, as
`load_image` gives it) holds more than the server's `map_pixels` is decoded straight to that many pixels
(`ScaledImage`), because every full-size float map of the prediction costs memory while the profiles'
networks see a few hundred pixels anyway. Its answer is still given in the loaded size (`size`): boxes are
scaled, the mask is the working mask enlarged (nearest neighbour), and regions are measured on that mask.
"""
from __future__ import annotations

import base64
import io
import math
import os
import tempfile
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from iapas.detections import Detections
from iapas.io.images import MAX_SIDE, LoadedImage, fit_size, load_image
from iapas.serve.guard import TRIM_PIXELS, give_memory_back
from iapas.serve.lines import Line
from iapas.serve.workers import Result
from iapas.types import Prediction

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


@dataclass
class ScaledImage(LoadedImage):
    """An upload decoded smaller than the size its answer is given in.

    The model scores `rgb`; the answer's boxes, regions and mask are scaled to `frame`, the (width, height)
    `load_image` gives the same file (longest side at most MAX_SIDE).
    """

    frame: tuple[int, int] = (0, 0)


def working_side(size: tuple[int, int], map_pixels: int | None) -> int | None:
    """The longest side to decode an image of header `size` at so that it holds at most `map_pixels`, or
    None when its loaded size (longest side at most MAX_SIDE) is within `map_pixels` already."""
    frame = fit_size(size, MAX_SIDE)
    if not map_pixels or frame[0] * frame[1] <= map_pixels:
        return None
    side = max(1, math.floor(max(frame) * math.sqrt(map_pixels / (frame[0] * frame[1]))))
    while side > 1 and math.prod(fit_size(size, side)) > map_pixels:
        side -= 1
    return side


def _without_downscale_note(note: str, shown: tuple[int, int], size: tuple[int, int]) -> str:
    """`load_image`'s note minus its first part, the downscaling one (the answer states its own)."""
    head = f"downscaled from {shown[0]}x{shown[1]} to {size[0]}x{size[1]}"
    if not note.startswith(head):
        return note
    end = note.find(")", len(head))
    return note[end + 1:].lstrip("; ") if end >= 0 else ""


def scaled_upload(loaded: LoadedImage, side: int, map_pixels: int) -> LoadedImage:
    """`loaded` (decoded at longest side `side`) as a ScaledImage whose answer is given at the size
    `load_image` would have loaded it, with a note saying both sizes."""
    shown = loaded.original_size
    frame = fit_size(shown, MAX_SIDE)
    if loaded.size == frame:
        return loaded
    work = loaded.size
    notes = []
    if frame != shown:
        notes.append(f"downscaled from {shown[0]}x{shown[1]} to {frame[0]}x{frame[1]} (longest side limit {MAX_SIDE} px)")
    notes.append(f"scored at {work[0]}x{work[1]} (images above {map_pixels} pixels are, --map-pixels): boxes, regions "
                 f"and mask scaled to {frame[0]}x{frame[1]}")
    rest = _without_downscale_note(loaded.note, shown, work)
    if rest:
        notes.append(rest)
    return ScaledImage(path=loaded.path, rgb=loaded.rgb, original_size=shown, note="; ".join(notes), frame=frame)


def decode_upload(data: bytes, filename: str, max_pixels: int, map_pixels: int | None = None) -> LoadedImage:
    """Check the pixel count, then load with the CLI's loader (raises its InputError for bad images).

    With `map_pixels`, an image whose loaded size holds more pixels is decoded straight to at most that
    many (JPEGs in draft mode, others resized right after decoding) and returned as a ScaledImage.
    """
    size = pixel_count(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise TooManyPixels(f"image is {size[0]}x{size[1]} = {size[0] * size[1]} pixels; this server accepts up to "
                            f"{max_pixels} (--max-pixels)")
    side = working_side(size, map_pixels) if size is not None else None
    # the temp file's suffix helps the loader name the format; only plain characters reach the file system
    suffix = "".join(ch for ch in os.path.splitext(filename or "")[1][:16] if ch.isalnum() or ch == ".")
    with tempfile.NamedTemporaryFile(prefix="iapas-upload-", suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        loaded = load_image(tmp.name) if side is None else load_image(tmp.name, max_side=side)
    if side is not None and map_pixels:
        loaded = scaled_upload(loaded, side, map_pixels)
    if size is not None and size[0] * size[1] >= TRIM_PIXELS:
        give_memory_back()  # the full-size decode buffers, freed in this thread, before the model's peak
    return replace(loaded, path=filename or "upload")


def enlarged_mask(mask: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    """A (h, w) bool mask enlarged to `frame` = (W, H) by nearest neighbour (each frame pixel takes the mask
    pixel under its centre), so regions keep their connectivity. Returns (H, W) bool."""
    h, w = mask.shape
    rows = np.minimum(((np.arange(frame[1]) + 0.5) * (h / frame[1])).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(frame[0]) + 0.5) * (w / frame[0])).astype(np.intp), w - 1)
    return np.take(np.take(mask, rows, axis=0), cols, axis=1)


def scaled_detections(det: Detections, sx: float, sy: float) -> Detections:
    """`det` with its boxes scaled by (sx, sy); per-box masks are dropped (an answer does not carry them)."""
    xyxy = np.asarray(det.xyxy, dtype=np.float64) * np.array([sx, sy, sx, sy])
    return Detections(xyxy=xyxy, scores=det.scores, phrases=det.phrases, removed_by=det.removed_by)


def in_frame(pred: Prediction, frame: tuple[int, int]) -> Prediction:
    """The prediction's mask and boxes in `frame` = (W, H) pixels; its score map stays at the scored size."""
    h, w = pred.mask.shape
    sx, sy = frame[0] / w, frame[1] / h
    obj = pred.object_box
    if obj is not None:
        x0, y0, x1, y1 = obj.xyxy
        obj = replace(obj, xyxy=(x0 * sx, y0 * sy, x1 * sx, y1 * sy))
    return replace(pred, mask=enlarged_mask(pred.mask, frame), boxes=scaled_detections(pred.boxes, sx, sy),
                   removed_boxes=scaled_detections(pred.removed_boxes, sx, sy), object_box=obj)


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


def overlay_png(rgb: np.ndarray, result: Result, line: Line, frame: tuple[int, int] | None = None) -> str:
    """The same overlay `segment` writes (colours anchored at the line's threshold; plain tinted mask if
    drawing fails), as base64 PNG. With `frame` (the answer's size, for an image scored smaller), the picture
    gets the display size an image of that size gets."""
    from iapas.outputs.drawing import fit_size as display_size
    from iapas.outputs.overlay import render_overlay
    from iapas.outputs.writer import plain_overlay
    from iapas.verdict import display_top

    threshold = result.verdict.threshold
    sides = {} if frame is None else {"min_side": max(display_size(*frame))}
    try:
        image = np.asarray(render_overlay(rgb, result.prediction, scale=(threshold, display_top(line.context, threshold)),
                                          **sides))
    except Exception:  # noqa: BLE001 - a drawing problem must not cost the answer
        image = plain_overlay(rgb, result.prediction.mask)
    return png_base64(image)


def answer(line: Line, image: LoadedImage, result: Result, mask: str | None, overlay: bool,
           total_s: float) -> dict[str, Any]:
    """The JSON body of a successful inspection."""
    from iapas.outputs.run_items import verdict_fields

    scored = result.prediction
    # a ScaledImage was scored smaller than the size its answer is given in: mask and boxes are brought to it
    pred = in_frame(scored, image.frame) if isinstance(image, ScaledImage) else scored
    # verdict, image_score, threshold, largest_region_area, top_phrase: as `segment` writes them to NAME.json
    body: dict[str, Any] = {"line": line.name, "context_id": line.context_id, **verdict_fields(pred, line.context)}
    meta = pred.to_json()
    if pred is not scored:
        meta["size"] = [int(image.frame[0]), int(image.frame[1])]
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
        frame = image.frame if isinstance(image, ScaledImage) else None
        body["overlay"] = {"format": "png", "data": overlay_png(image.rgb, result, line, frame)}
    return body
