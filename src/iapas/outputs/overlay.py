"""Per-image overlay: what the tool found, where, and why, in one picture.

The score map is blended over the image. With a `scale` (threshold, top) the colours are anchored at the
calibrated decision threshold: below it the image shows as it is, from it up the colour rises from
yellow to red (full red at `top`), so a defect stands out and a clean part stays clean (on a
plain 0-1 jet scale every offline map, whose scores sit in a narrow band, looks teal). Without a scale (raw evaluation maps of the paper
protocol) a jet colour scale over `vrange` is used. Kept boxes carry "phrase score" on tags that never
overlap, boxes the size filter removed are dashed grey, the object box is a thin dotted frame, and a
legend under the picture says what every colour and line means. Drawn with Pillow, not a matplotlib
figure, because `run` writes one per image.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from iapas.outputs import drawing as d
from iapas.types import Box, Prediction

MIN_WIDTH = 360  # narrow images get a wider canvas so header and legend stay readable
Scale = tuple[float, float]  # (threshold where colour starts, score of full red)
MAX_LABELS = 6  # tags on one picture at most; the rest is counted in the header and listed in NAME.json
LABEL_AREA_SHARE = 0.12  # text tags may cover at most this share of the picture, else they become numbers


def label_groups(rects: list[d.Rect], gap: float) -> list[list[int]]:
    """Indices of `rects` grouped where rectangles overlap or lie within `gap` px of each other
    (transitively), each group in input order, groups ordered by their first member.

    Args:
        rects: boxes (x0, y0, x1, y1) in display pixels, best first.
        gap: distance under which two boxes share one label.
    """
    parent = list(range(len(rects)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    grown = [(r[0] - gap / 2, r[1] - gap / 2, r[2] + gap / 2, r[3] + gap / 2) for r in rects]
    for i in range(len(rects)):
        for j in range(i + 1, len(rects)):
            if d.overlaps(grown[i], grown[j]):
                parent[max(root(i), root(j))] = min(root(i), root(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(rects)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _tag_text(box: Box, others: int) -> str:
    """`phrase score`, the offline descriptions without their trailing 'region', `+k` for merged neighbours."""
    phrase = box.phrase[: -len(" region")] if box.phrase.endswith(" region") else box.phrase
    return f"{phrase} {box.score:.2f}" + (f" +{others}" if others else "")


def _place_kept_labels(draw: ImageDraw.ImageDraw, boxes: list[Box], sx: float, sy: float, size: tuple[int, int],
                       fnt: d.ImageFont.ImageFont, taken: list[d.Rect]) -> tuple[list[str], int]:
    """Label kept boxes without drowning a small picture: overlapping or touching boxes share one tag (the
    best box's text, `+k` for the others), at most MAX_LABELS tags (fewer on a short picture), and when the
    tags would cover more than LABEL_AREA_SHARE of the picture they become numbers keyed in the legend.

    Returns:
        (legend key lines for numbered tags, number of regions left without a tag).
    """
    order = sorted(boxes, key=lambda b: -b.score)
    rects = [_scaled(b, sx, sy) for b in order]
    th = d.text_size(draw, "Ag", fnt)[1]
    groups = label_groups(rects, gap=th)
    cap = max(1, min(MAX_LABELS, size[1] // (3 * (th + 4))))
    shown = groups[:cap]
    texts = [_tag_text(order[g[0]], len(g) - 1) for g in shown]
    pad = max(2, th // 4)
    widths = [d.text_size(draw, t, fnt)[0] + 2 * pad for t in texts]  # each tag measured once
    cover = sum(wd * (th + 2 * pad) for wd in widths)
    numbered = cover > LABEL_AREA_SHARE * size[0] * size[1] or any(wd > size[0] for wd in widths)
    key = []
    for k, (g, text) in enumerate(zip(shown, texts), start=1):
        xy = rects[g[0]]
        tag = str(k) if numbered else text
        d.label(draw, (xy[0], xy[1]), tag, fnt, bg=d.KEPT_COLOUR, fg=(255, 255, 255), bounds=size, taken=taken,
                bottom=xy[3])
        if numbered:
            key.append(f"{k}: {text}")
    unlabelled = sum(len(g) for g in groups[cap:])
    return key, unlabelled


def _scaled(box: Box, sx: float, sy: float) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box.xyxy
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def _bar_values(vrange: tuple[float, float], scale: Scale | None) -> tuple[float, float]:
    if scale is None:
        return vrange
    thr, top = scale
    return (max(min(vrange[0], thr), thr - (top - thr)), top)


def _bar_ramp(values: np.ndarray, strip_w: int, vrange: tuple[float, float], scale: Scale | None) -> np.ndarray:
    """The bar's colours: the anchored colours over mid grey (grey = 'no colour'), or the jet ramp."""
    if scale is None:
        lo, hi = vrange
        ramp = d.colorize(d.normalise(values, (lo, hi)))
    else:
        colour, alpha = d.anchored_colours(values, *scale)
        ramp = (alpha[:, None] * colour + (1 - alpha[:, None]) * 128.0).astype(np.uint8)
    return np.repeat(ramp[:, None, :], strip_w, axis=1)


def _colour_bar(height: int, width: int, vrange: tuple[float, float], scale: Scale | None,
                threshold: float | None, font_size: int) -> Image.Image:
    """Vertical colour bar (high at the top) with ticks, the threshold marked with a white arrow."""
    bar = Image.new("RGB", (width, height), d.HEADER_BG)
    draw = ImageDraw.Draw(bar)
    font_size = max(6, min(font_size, height // 6))  # short, wide images get a short bar
    fnt = d.font(font_size)
    top, bottom = font_size, height - font_size
    if bottom - top < 4:
        top, bottom = 0, height
    strip_w = max(10, width // 5)
    x0 = 6
    lo, hi = _bar_values(vrange, scale)
    span = hi - lo if hi > lo else 1.0
    values = hi - np.linspace(0.0, 1.0, max(2, bottom - top)) * span
    bar.paste(Image.fromarray(_bar_ramp(values, strip_w, vrange, scale)), (x0, top))
    draw.rectangle((x0, top, x0 + strip_w - 1, bottom - 1), outline=(150, 150, 150))
    ticks = [lo + f * span for f in (0.0, 0.25, 0.5, 0.75, 1.0)] if scale is None else [lo, scale[0], hi]
    for value in ticks:
        y = bottom - 1 - (value - lo) / span * (bottom - top - 1)
        draw.line((x0 + strip_w, y, x0 + strip_w + 4, y), fill=d.HEADER_FG)
        text = f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
        if scale is not None and value == hi:
            text += "+"
        th = d.text_size(draw, text, fnt)[1]
        draw.text((x0 + strip_w + 7, min(max(0, y - th / 2 - 1), height - th - 2)), text, font=fnt, fill=d.HEADER_FG)
    marker = scale[0] if scale is not None else threshold
    if marker is not None and lo <= marker <= hi:
        y = bottom - 1 - (marker - lo) / span * (bottom - top - 1)
        draw.line((x0 - 4, y, x0 + strip_w + 4, y), fill=(255, 255, 255), width=2)
        draw.polygon([(x0 - 5, y - 4), (x0 - 1, y), (x0 - 5, y + 4)], fill=(255, 255, 255))
    return bar


def _fit_left(draw: ImageDraw.ImageDraw, text: str, fnt: d.ImageFont.ImageFont, width: int) -> str:
    """Cut text from the left (the file name is at the end) until it fits."""
    if d.text_size(draw, text, fnt)[0] <= width:
        return text
    while len(text) > 2 and d.text_size(draw, "\u2026" + text, fnt)[0] > width:
        text = text[1:]
    return "\u2026" + text


def _header(width: int, parts: list[str], font_size: int, max_lines: int = 3) -> Image.Image:
    """The facts, wrapped onto up to `max_lines` lines (never cut off the right edge of a narrow image)."""
    fnt = d.font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    th = d.text_size(probe, "Ag", fnt)[1]
    sep, room = "  |  ", width - 12
    lines: list[str] = []
    for part in parts:
        part = _fit_left(probe, part, fnt, room)
        if lines and d.text_size(probe, lines[-1] + sep + part, fnt)[0] <= room:
            lines[-1] += sep + part
        elif len(lines) < max_lines:
            lines.append(part)
    line_h = th + 6
    head = Image.new("RGB", (width, line_h * len(lines) + 8), d.HEADER_BG)
    draw = ImageDraw.Draw(head)
    dy = draw.textbbox((0, 0), "Ag", font=fnt)[1]
    for i, text in enumerate(lines):
        draw.text((6, 5 + i * line_h - dy), text, font=fnt, fill=d.HEADER_FG)
    return head


def _legend_items(prediction: Prediction, scale: Scale | None, threshold: float | None,
                  has_gt: bool, key: list[str] | None = None) -> list[tuple[str, tuple[int, int, int], str]]:
    """(swatch kind, colour, meaning) for everything drawn on this overlay."""
    items: list[tuple[str, tuple[int, int, int], str]] = []
    if scale is not None:
        items.append(("ramp", d.ANCHOR_HIGH, f"score \u2265 {scale[0]:.2f} (threshold): yellow \u2192 red at {scale[1]:.2f}; "
                                             "below: no colour"))
    else:
        items.append(("jet", (0, 0, 0), "score: blue low \u2192 red high"))
    region = f"score \u2265 {threshold:.2f}" if threshold is not None else "predicted defect mask"
    items.append(("line", d.PRED_OUTLINE_COLOUR, f"white outline: {region}"))
    described = any(b.phrase.endswith(" region") for b in prediction.boxes)  # the offline profile's descriptions
    what = "its description" if described else "phrase that found it"
    items.append(("box", d.KEPT_COLOUR, f"box: region kept, tag = {what} + score"))
    items.extend(("box", d.KEPT_COLOUR, line) for line in key or [])
    if prediction.removed_boxes:
        items.append(("dashed", d.REMOVED_COLOUR, "dashed grey: removed by the size filter"))
    if prediction.object_box is not None:
        items.append(("dashed", d.OBJECT_COLOUR, "dotted white: the object"))
    if has_gt:
        items.append(("line", d.GT_COLOUR, "green outline: ground truth"))
    return items


def _legend(width: int, items: list[tuple[str, tuple[int, int, int], str]], font_size: int) -> Image.Image:
    """Swatch + text per item, wrapped over as many lines as the width needs."""
    fnt = d.font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    th = d.text_size(probe, "Ag", fnt)[1]
    sw, gap, line_h = 2 * th, 14, th + 8
    placed: list[tuple[int, int, tuple[str, tuple[int, int, int], str], str]] = []
    x, row = 6, 0
    for item in items:
        text = _fit_left(probe, item[2], fnt, width - sw - 18)
        need = sw + 6 + d.text_size(probe, text, fnt)[0]
        if x > 6 and x + need > width - 6:
            x, row = 6, row + 1
        placed.append((x, row, item, text))
        x += need + gap
    img = Image.new("RGB", (width, (row + 1) * line_h + 6), d.HEADER_BG)
    draw = ImageDraw.Draw(img)
    dy = draw.textbbox((0, 0), "Ag", font=fnt)[1]
    for x, row, (kind, colour, _), text in placed:
        y = 4 + row * line_h
        box = (x, y + 2, x + sw, y + th + 2)
        if kind == "ramp":
            vals = np.linspace(0.0, 1.0, sw)
            colours, alpha = d.anchored_colours(vals, 0.0, 1.0)
            strip = (alpha[:, None] * colours + (1 - alpha[:, None]) * 128).astype(np.uint8)
            img.paste(Image.fromarray(np.repeat(strip[None], th, axis=0)), (x, y + 2))
        elif kind == "jet":
            img.paste(Image.fromarray(np.repeat(d.colorize(np.linspace(0, 1, sw))[None], th, axis=0)), (x, y + 2))
        elif kind == "line":
            draw.rectangle(box, fill=(128, 128, 128))
            draw.rectangle(box, outline=colour, width=2)
        elif kind == "box":
            draw.rectangle(box, outline=colour, width=2)
        else:
            d.dashed_rectangle(draw, box, colour, width=1, dash=3)
        draw.text((x + sw + 6, y + 2 - dy), text, font=fnt, fill=d.HEADER_FG)
    return img


def _draw_boxes(draw: ImageDraw.ImageDraw, prediction: Prediction, factors: tuple[float, float],
                size: tuple[int, int], font_size: int, fnt: Any, taken: list[d.Rect]) -> tuple[Any, int]:
    """Draw the kept boxes with their tags, the removed boxes dashed with why, and the object box.

    Args:
        draw: the picture's drawing context, at `size`.
        prediction: the boxes (in the image's pixels).
        factors: (sx, sy) from image pixels to the picture's.
        size: (w, h) of the picture.
        font_size: the tags' font size; `fnt` the font.
        taken: rectangles already used by tags (tags are added to it).

    Returns:
        The legend key of the kept boxes and how many kept boxes got no tag (`_place_kept_labels`).
    """
    sx, sy = factors
    w, h = size
    line_w = max(2, round(max(w, h) / 300))
    for box in sorted(prediction.boxes, key=lambda b: b.score):  # best drawn last, on top
        draw.rectangle(_scaled(box, sx, sy), outline=d.KEPT_COLOUR, width=line_w)
    key, unlabelled = _place_kept_labels(draw, list(prediction.boxes), sx, sy, size, fnt, taken)
    small = d.font(max(10, font_size - 2))
    for box in list(prediction.removed_boxes)[: max(0, MAX_LABELS - len(taken))]:
        xy = _scaled(box, sx, sy)
        d.dashed_rectangle(draw, xy, d.REMOVED_COLOUR, width=max(1, line_w - 1), dash=max(6, line_w * 4))
        why = (box.removed_by or "filter").replace("_", " ")
        d.label(draw, (xy[0], xy[1]), f"{box.phrase} {box.score:.2f} \u00d7 {why}", small,
                bg=d.REMOVED_COLOUR, fg=(40, 40, 40), bounds=size, taken=taken, bottom=xy[3])
    if prediction.object_box is not None:
        ob = _scaled(prediction.object_box, sx, sy)
        d.dashed_rectangle(draw, ob, d.OBJECT_COLOUR, width=1, dash=3)
        d.label(draw, (ob[0], ob[3] + 2 + font_size * 1.6), f"object: {prediction.object_box.phrase}",
                d.font(max(10, font_size - 3)), bg=(255, 255, 255), bounds=size, taken=taken)
    return key, unlabelled


def _head_parts(prediction: Prediction, title: str | None, unlabelled: int) -> list[str]:
    """The overlay header's items: the title when given, else file, image score, box counts and profile."""
    if title:
        return [title]
    kept, removed = len(prediction.boxes), len(prediction.removed_boxes)
    return [
        _short(prediction.path), f"image score {prediction.image_score:.3f}",
        f"{kept} kept" + (f", {removed} removed by size filter" if removed else "")
        + (f" ({unlabelled} without a tag)" if unlabelled else ""), f"profile {prediction.profile}",
    ]


def render_overlay(
    rgb: np.ndarray,
    prediction: Prediction,
    threshold: float | None = None,
    *,
    scale: Scale | None = None,
    gt_mask: np.ndarray | None = None,
    vrange: tuple[float, float] | None = None,
    title: str | None = None,
    min_side: int = 384,
    max_side: int = 1600,
) -> Image.Image:
    """Score map over the image with colour bar, labelled kept boxes, dashed removed boxes and a legend.

    `scale` = (threshold, top) anchors the colours at the decision threshold (see the module docstring);
    `threshold` outlines the region scoring at least that value (else the prediction's mask is outlined);
    `gt_mask` adds the ground-truth outline (green); `vrange` maps raw scores to the jet scale when no
    `scale` is given (default [0, 1]). Kept boxes get at most MAX_LABELS tags (see `_place_kept_labels`).
    The returned image's `info["image_box"]` is (x, y, w, h) of the picture inside it, for checks that
    measure pixels, and `info["tags"]` the number of tags drawn on it.
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    h0, w0 = rgb.shape[:2]
    size = d.fit_size(w0, h0, min_side, max_side)
    w, h = size
    vr = vrange or (0.0, 1.0)
    score = d.resize_map(prediction.score_map, size)
    base = d.resize_rgb(rgb, size)
    canvas = d.blend_anchored(base, score, *scale) if scale is not None else d.blend_heat(base, d.normalise(score, vr))

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
    taken: list[d.Rect] = []
    key, unlabelled = _draw_boxes(draw, prediction, (w / w0, h / h0), size, font_size, fnt, taken)

    bar = _colour_bar(h, max(64, font_size * 4 + 16), vr, scale, threshold, max(10, font_size - 2))
    width = max(w + bar.width, MIN_WIDTH)
    head = _header(width, _head_parts(prediction, title, unlabelled), max(11, font_size - 1))
    legend = _legend(width, _legend_items(prediction, scale, threshold, gt_mask is not None, key), max(10, font_size - 3))
    out = Image.new("RGB", (width, head.height + h + legend.height), d.HEADER_BG)
    out.paste(head, (0, 0))
    out.paste(img, (0, head.height))
    out.paste(bar, (w, head.height))
    out.paste(legend, (0, head.height + h))
    out.info["image_box"] = (0, head.height, w, h)
    out.info["tags"] = len(taken)  # tags drawn on the picture, for checks
    return out


def _short(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else path
