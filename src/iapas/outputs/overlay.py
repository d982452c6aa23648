"""Per-image overlay: what the tool found, where, and why, in one picture.

The score map is blended over the image with a colour bar; kept boxes carry "phrase score", boxes the
size filter removed are dashed grey (so a reviewer sees what Step 2-2 threw away), the object box is a
thin dotted frame. Drawn with Pillow, not a matplotlib figure, because `run` writes one per image.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from iapas.outputs import drawing as d
from iapas.types import Box, Prediction


def _scaled(box: Box, sx: float, sy: float) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box.xyxy
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def _colour_bar(height: int, width: int, vrange: tuple[float, float], threshold: float | None,
                font_size: int) -> Image.Image:
    """Vertical colour bar (high at the top) with ticks and an optional threshold marker."""
    bar = Image.new("RGB", (width, height), d.HEADER_BG)
    draw = ImageDraw.Draw(bar)
    font_size = max(6, min(font_size, height // 6))  # short, wide images get a short bar
    fnt = d.font(font_size)
    top, bottom = font_size, height - font_size
    if bottom - top < 4:
        top, bottom = 0, height
    strip_w = max(10, width // 5)
    x0 = 6
    ramp = np.linspace(1.0, 0.0, max(2, bottom - top))[:, None].repeat(strip_w, axis=1)
    bar.paste(Image.fromarray(d.colorize(ramp)), (x0, top))
    draw.rectangle((x0, top, x0 + strip_w - 1, bottom - 1), outline=(150, 150, 150))
    lo, hi = vrange
    span = hi - lo if hi > lo else 1.0
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = bottom - 1 - frac * (bottom - top - 1)
        draw.line((x0 + strip_w, y, x0 + strip_w + 4, y), fill=d.HEADER_FG)
        value = lo + frac * span
        text = f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
        th = d.text_size(draw, text, fnt)[1]
        draw.text((x0 + strip_w + 7, y - th / 2 - 1), text, font=fnt, fill=d.HEADER_FG)
    if threshold is not None and lo <= threshold <= hi:
        y = bottom - 1 - (threshold - lo) / span * (bottom - top - 1)
        draw.line((x0 - 4, y, x0 + strip_w + 4, y), fill=(255, 255, 255), width=2)
        draw.polygon([(x0 - 5, y - 4), (x0 - 1, y), (x0 - 5, y + 4)], fill=(255, 255, 255))
    return bar


def _header(width: int, parts: list[str], font_size: int) -> Image.Image:
    """One line of facts; when it does not fit, the last facts go first, then the path's start."""
    fnt = d.font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    th = d.text_size(probe, "Ag", fnt)[1]
    head = Image.new("RGB", (width, th + 12), d.HEADER_BG)
    draw = ImageDraw.Draw(head)
    sep = "  |  "
    while len(parts) > 1 and d.text_size(draw, sep.join(parts), fnt)[0] > width - 12:
        parts = parts[:-1]
    text = sep.join(parts)
    if d.text_size(draw, text, fnt)[0] > width - 12:  # cut from the left: the file name is at the end
        while len(text) > 4 and d.text_size(draw, "\u2026" + text, fnt)[0] > width - 12:
            text = text[1:]
        text = "\u2026" + text
    draw.text((6, 6 - draw.textbbox((0, 0), "Ag", font=fnt)[1]), text, font=fnt, fill=d.HEADER_FG)
    return head


def render_overlay(
    rgb: np.ndarray,
    prediction: Prediction,
    threshold: float | None = None,
    *,
    gt_mask: np.ndarray | None = None,
    vrange: tuple[float, float] | None = None,
    title: str | None = None,
    min_side: int = 384,
    max_side: int = 1600,
) -> Image.Image:
    """Score map over the image with colour bar, labelled kept boxes and dashed removed boxes.

    `threshold` outlines the region scoring at least that value (else the prediction's mask) and marks it
    on the colour bar; `gt_mask` adds the ground-truth outline (green); `vrange` maps raw, unnormalised
    scores (evaluation records) to colours, default [0, 1].
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    h0, w0 = rgb.shape[:2]
    size = d.fit_size(w0, h0, min_side, max_side)
    w, h = size
    vr = vrange or (0.0, 1.0)
    score = d.resize_map(prediction.score_map, size)
    canvas = d.blend_heat(d.resize_rgb(rgb, size), d.normalise(score, vr))

    edge_w = max(1, round(max(w, h) / 500))
    if threshold is not None:
        region = score >= threshold
    else:
        region = d.resize_mask(prediction.mask, size) if prediction.mask is not None else np.zeros((h, w), bool)
    canvas = d.paint(canvas, d.outline(region, edge_w), d.PRED_OUTLINE_COLOUR)
    if gt_mask is not None:
        canvas = d.paint(canvas, d.outline(d.resize_mask(gt_mask, size), edge_w + 1), d.GT_COLOUR)

    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    font_size = int(np.clip(round(max(w, h) / 42), 12, 24))
    fnt = d.font(font_size)
    line_w = max(2, round(max(w, h) / 300))
    sx, sy = w / w0, h / h0

    if prediction.object_box is not None:
        ob = _scaled(prediction.object_box, sx, sy)
        d.dashed_rectangle(draw, ob, d.OBJECT_COLOUR, width=1, dash=3)
        d.label(draw, (ob[0], ob[3] + 2 + font_size * 1.6), f"object: {prediction.object_box.phrase}",
                d.font(max(10, font_size - 3)), bg=(255, 255, 255), bounds=size)
    for box in prediction.removed_boxes:
        xy = _scaled(box, sx, sy)
        d.dashed_rectangle(draw, xy, d.REMOVED_COLOUR, width=max(1, line_w - 1), dash=max(6, line_w * 4))
        why = (box.removed_by or "filter").replace("_", " ")
        d.label(draw, (xy[0], xy[1]), f"{box.phrase} {box.score:.2f} \u00d7 {why}", d.font(max(10, font_size - 2)),
                bg=d.REMOVED_COLOUR, fg=(40, 40, 40), bounds=size)
    for box in sorted(prediction.boxes, key=lambda b: b.score):  # best drawn last, on top
        xy = _scaled(box, sx, sy)
        draw.rectangle(xy, outline=d.KEPT_COLOUR, width=line_w)
        d.label(draw, (xy[0], xy[1]), f"{box.phrase} {box.score:.2f}", fnt, bg=d.KEPT_COLOUR,
                fg=(255, 255, 255), bounds=size)

    bar = _colour_bar(h, max(64, font_size * 4 + 16), vr, threshold, max(10, font_size - 2))
    kept, removed = len(prediction.boxes), len(prediction.removed_boxes)
    head_parts = [title] if title else [
        _short(prediction.path), f"image score {prediction.image_score:.3f}",
        f"{kept} kept" + (f", {removed} removed by size filter" if removed else ""), f"profile {prediction.profile}",
    ]
    head = _header(w + bar.width, head_parts, max(11, font_size - 1))
    out = Image.new("RGB", (w + bar.width, h + head.height), d.HEADER_BG)
    out.paste(head, (0, 0))
    out.paste(img, (0, head.height))
    out.paste(bar, (w, head.height))
    return out


def _short(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else path
