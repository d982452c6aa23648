"""Comparison panels like the paper's Figure 3: image | ground truth | score map per setting, a row per image.

Each score-map column has one colour scale for all its rows (stated in its header), so within a column
brighter means "scored higher" across images, and a reviewer can compare settings side by side.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from iapas.outputs import drawing as d


@dataclass
class PanelRow:
    """One image across all compared settings."""

    label: str
    rgb: np.ndarray | None  # None: source image unavailable (drawn as a placeholder)
    gt: np.ndarray | None  # bool mask; None: no ground truth known
    maps: list[np.ndarray | None]  # one score map per column; None: that setting lacks this image
    captions: list[str] = field(default_factory=list)  # one per map column, e.g. "score 0.82"


def _cell_height(rgb: np.ndarray | None, maps: list[np.ndarray | None], cell: int) -> int:
    ref = rgb if rgb is not None else next((m for m in maps if m is not None), None)
    if ref is None:
        return cell
    h, w = ref.shape[:2]
    return int(np.clip(round(cell * h / w), cell // 3, round(cell * 1.5)))


def _gt_tile(gt: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    if gt is None:
        return d.placeholder(size, "no ground truth")
    tile = np.repeat((d.resize_mask(gt, size).astype(np.uint8) * 255)[..., None], 3, axis=2)
    if not gt.any():
        img = Image.fromarray(tile)
        draw = ImageDraw.Draw(img)
        fnt = d.font(max(10, size[0] // 14))
        draw.text((6, 4), "normal", font=fnt, fill=(170, 170, 170))
        tile = np.asarray(img)
    return tile


def render_panel(
    rows: list[PanelRow], map_titles: list[str], vranges: list[tuple[float, float]] | None = None,
    cell: int = 200, title: str | None = None,
) -> Image.Image:
    """Grid image: columns image, ground truth, then one heat overlay per entry of `map_titles`."""
    if not rows:
        raise ValueError("a comparison panel needs at least one image")
    ncols = 2 + len(map_titles)
    if vranges is None:
        vranges = [d.display_range([r.maps[j] for r in rows if r.maps[j] is not None]) for j in range(len(map_titles))]
    gap, pad = 4, 10
    fnt, small, bold = d.font(13), d.font(11), d.font(14, bold=True)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = d.text_size(probe, "Ag", fnt)[1] + 6
    small_h = d.text_size(probe, "Ag", small)[1] + 6
    title_h = line_h + 8 if title else 0
    head_h = 2 * line_h + 4
    heights = [_cell_height(r.rgb, r.maps, cell) for r in rows]
    legend_h = 34
    width = 2 * pad + ncols * cell + (ncols - 1) * gap
    height = pad + title_h + head_h + sum(h + small_h + gap for h in heights) + legend_h + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    y = pad
    if title:
        draw.text((pad, y), title, font=bold, fill=(20, 20, 20))
        y += title_h
    headers = ["image", "ground truth", *map_titles]
    for j, text in enumerate(headers):
        x = pad + j * (cell + gap)
        for k, line in enumerate(_wrap(probe, text, fnt, cell)[:2]):
            draw.text((x + 2, y + k * line_h), line, font=fnt, fill=(20, 20, 20))
    y += head_h
    for row, h in zip(rows, heights):
        size = (cell, h)
        base = d.resize_rgb(row.rgb, size) if row.rgb is not None else d.placeholder(size, "image not found")
        tiles = [base, _gt_tile(row.gt, size)]
        for j in range(len(map_titles)):
            m = row.maps[j] if j < len(row.maps) else None
            if m is None:
                tiles.append(d.placeholder(size, "not in this run"))
                continue
            heat01 = d.normalise(d.resize_map(m, size), vranges[j])
            tile = d.blend_heat(base, heat01) if row.rgb is not None else d.colorize(heat01)
            tiles.append(tile)
        for j, tile in enumerate(tiles):
            x = pad + j * (cell + gap)
            canvas.paste(Image.fromarray(tile), (x, y))
        caption_y = y + h + 2
        draw.text((pad + 2, caption_y), _fit(probe, row.label, small, 2 * cell + gap), font=small, fill=(60, 60, 60))
        for j, cap in enumerate(row.captions[: len(map_titles)]):
            x = pad + (2 + j) * (cell + gap)
            draw.text((x + 2, caption_y), _fit(probe, cap, small, cell), font=small, fill=(60, 60, 60))
        y += h + small_h + gap
    _legend(canvas, pad, y + 4, min(width - 2 * pad, 320))
    return canvas


def _legend(canvas: Image.Image, x: int, y: int, length: int) -> None:
    """Horizontal colour ramp: low -> high score of each column's own scale."""
    draw = ImageDraw.Draw(canvas)
    fnt = d.font(11)
    lw = d.text_size(draw, "low", fnt)[0]
    ramp = np.linspace(0.0, 1.0, length - 2 * lw - 16)[None, :].repeat(12, axis=0)
    draw.text((x, y), "low", font=fnt, fill=(60, 60, 60))
    canvas.paste(Image.fromarray(d.colorize(ramp)), (x + lw + 6, y + 1))
    draw.text((x + lw + 10 + ramp.shape[1], y), "high", font=fnt, fill=(60, 60, 60))


def _wrap(draw: ImageDraw.ImageDraw, text: str, fnt, width: int) -> list[str]:  # type: ignore[no-untyped-def]
    words, lines, cur = text.split(), [], ""
    for w in words:
        cand = f"{cur} {w}".strip()
        if d.text_size(draw, cand, fnt)[0] <= width - 4 or not cur:
            cur = cand
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    return [_fit(draw, line, fnt, width) for line in lines] or [""]


def _fit(draw: ImageDraw.ImageDraw, text: str, fnt, width: int) -> str:  # type: ignore[no-untyped-def]
    """Cut text from the left (keeping the informative end of a path) until it fits."""
    if d.text_size(draw, text, fnt)[0] <= width - 4:
        return text
    while len(text) > 2 and d.text_size(draw, "\u2026" + text, fnt)[0] > width - 4:
        text = text[1:]
    return "\u2026" + text
