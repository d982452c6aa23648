"""Small Pillow/numpy drawing helpers shared by overlays, panels and reports.

Kept in one place so every picture the tool leaves uses the same fonts, colour map and score scaling;
a reviewer comparing two pictures then compares the data, not the styling.
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import binary_erosion

CMAP = "jet"
KEPT_COLOUR = (255, 0, 200)  # magenta: absent from jet, so boxes stay visible on any score
REMOVED_COLOUR = (200, 200, 200)
OBJECT_COLOUR = (255, 255, 255)
GT_COLOUR = (60, 255, 60)
PRED_OUTLINE_COLOUR = (255, 255, 255)
HEADER_BG = (28, 32, 38)
HEADER_FG = (235, 238, 242)


@lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's own data (always installed with it), else Pillow's default font."""
    import matplotlib  # matplotlib: heavy, loaded only when a colour map or plot is drawn

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default(size=size)


@lru_cache(maxsize=4)
def colour_lut(name: str = CMAP) -> np.ndarray:
    """Lookup table of a matplotlib colour map (no figure needed).

    Args:
        name: the colour map's name.
    Returns:
        (256, 3) uint8 colours.
    """
    import matplotlib  # matplotlib: heavy, loaded only when a colour map or plot is drawn

    cmap = matplotlib.colormaps[name]
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def colorize(score01: np.ndarray, cmap: str = CMAP) -> np.ndarray:
    """Scores in [0, 1] -> colours of `cmap`.

    Args:
        score01: (H, W) scores in [0, 1] (NaN counts as 0).
        cmap: the colour map's name.
    Returns:
        (H, W, 3) uint8 colours.
    """
    return colour_lut(cmap)[_index(score01)]


def normalise(score: np.ndarray, vrange: tuple[float, float]) -> np.ndarray:
    """Map raw scores to [0, 1] with a fixed range (so maps sharing a range stay comparable).

    Args:
        score: (H, W) raw scores.
        vrange: (low, high) mapped to 0 and 1.
    Returns:
        (H, W) float32 in [0, 1].
    """
    lo, hi = vrange
    span = hi - lo if hi > lo else 1e-12
    return np.clip((np.asarray(score, dtype=np.float32) - lo) / span, 0.0, 1.0)


def display_range(maps: list[np.ndarray]) -> tuple[float, float]:
    """One jet colour scale for a set of maps (comparison panels, paper-protocol overlays).

    From their 1st to their 99.9th percentile, so maps that live in a narrow band (offline scores sit in
    0.4-0.65) still spread over the colours instead of all looking teal.

    Args:
        maps: score maps, each (H, W) (sizes may differ).
    Returns:
        (low, high) of the scale.
    """
    if not maps:
        return (0.0, 1.0)
    flat = np.concatenate([np.asarray(m, dtype=np.float32).ravel()[:: max(1, m.size // 50_000)] for m in maps])
    flat = flat[np.isfinite(flat)]
    if not flat.size:
        return (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(flat, [1.0, 99.9]))
    if not hi > lo:
        lo, hi = float(flat.min()), float(flat.max())
    if not hi > lo:
        hi = lo + 1.0
    return (lo, hi)


def anchored_scale(threshold: float | None, hi: float) -> tuple[float, float] | None:
    """(threshold, top) for overlays judged at `threshold` whose maps reach `hi` (their 99.9th percentile):
    full red halfway from the threshold to `hi` (at least 0.05 above the threshold); None without one."""
    if threshold is None:
        return None
    return (float(threshold), float(max(threshold + (hi - threshold) / 2.0, threshold + 0.05)))


def fit_size(width: int, height: int, min_side: int = 384, max_side: int = 1600) -> tuple[int, int]:
    """Display size: small images scaled up so labels stay readable, big ones capped."""
    longest = max(width, height)
    scale = 1.0
    if longest < min_side:
        scale = min_side / longest
    elif longest > max_side:
        scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit_box(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """Largest size with the image's aspect that fits in box_w x box_h (scaling up or down)."""
    scale = min(box_w / width, box_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _gap(src: tuple[int, int], dst: tuple[int, int]) -> float | None:
    """Pillow's two-step downscale (box reduce, then bilinear) for big reductions: much faster, same look."""
    return 2.0 if src[0] >= 2 * dst[0] or src[1] >= 2 * dst[1] else None


def resize_map(score: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map.

    Args:
        score: (H, W) map.
        size: (W2, H2) wanted.
    Returns:
        (H2, W2) float32 map.
    """
    arr = np.asarray(score, dtype=np.float32)
    if (arr.shape[1], arr.shape[0]) == tuple(size):
        return arr
    img = Image.fromarray(arr, mode="F")
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR, reducing_gap=_gap(img.size, size)), dtype=np.float32)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask.

    Args:
        mask: (H, W) mask.
        size: (W2, H2) wanted.
    Returns:
        (H2, W2) bool mask.
    """
    m = np.asarray(mask, dtype=bool)
    if (m.shape[1], m.shape[0]) == tuple(size):
        return m
    img = Image.fromarray(m.astype(np.uint8) * 255, mode="L").resize(size, Image.Resampling.NEAREST)
    return np.asarray(img) > 127


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image at another size (bilinear); unchanged when it already has that size.

    Args:
        rgb: (H, W, 3) image.
        size: (width, height) wanted.
    Returns:
        (height, width, 3) uint8 image.
    """
    if (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return np.asarray(rgb, dtype=np.uint8)
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR, reducing_gap=_gap(img.size, size)))


def _index(score01: np.ndarray) -> np.ndarray:
    """[0, 1] scores -> uint8 colour-table index."""
    return np.clip(np.nan_to_num(score01, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def _heat_tables(cmap: str) -> tuple[list[int], list[int]]:
    """Palette (colour per score index) and opacity per score index, for Pillow's C loops."""
    palette = [int(v) for v in colour_lut(cmap).ravel()]
    opacity = [int(round(255 * (0.18 + 0.5 * i / 255))) for i in range(256)]
    return palette, opacity


def blend_heat(rgb: np.ndarray, score01: np.ndarray, cmap: str = CMAP) -> np.ndarray:
    """Heat colours over the image; opacity grows with the score so normal areas stay visible.

    Done by Pillow (palette lookup, then a masked composite): this runs once per output image.

    Args:
        rgb: (H, W, 3) uint8 image.
        score01: (H, W) scores in [0, 1].
        cmap: the colour map's name.
    Returns:
        (H, W, 3) uint8 blended image.
    """
    palette, opacity = _heat_tables(cmap)
    idx = Image.fromarray(_index(score01), mode="L")
    heat = idx.copy()
    heat.putpalette(palette)  # an "L" image with a palette becomes "P"
    heat = heat.convert("RGB")
    alpha = idx.point(opacity)
    base = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    return np.asarray(Image.composite(heat, base, alpha))


# Threshold-anchored display: nothing below the decision threshold, yellow at it, red at `top`.
ANCHOR_LOW = (255, 225, 0)
ANCHOR_MID = (255, 135, 0)
ANCHOR_HIGH = (255, 0, 0)


def anchored_colours(values: np.ndarray, threshold: float, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour and opacity of scores on the threshold-anchored scale.

    Below the threshold: opacity 0, so a clean area shows the image exactly as it is; from the threshold
    up: yellow -> orange -> red with growing opacity, full red at `top` and above.

    Args:
        values: (N,) raw scores.
        threshold: the score where colour starts.
        top: the score of full red.
    Returns:
        (N, 3) uint8 colours and (N,) opacities in [0, 1].
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    t = np.clip((v - threshold) / max(top - threshold, 1e-6), 0.0, 1.0)[:, None]
    low, mid, high = (np.array(c, dtype=np.float64) for c in (ANCHOR_LOW, ANCHOR_MID, ANCHOR_HIGH))
    colour = np.where(t < 0.5, low + (mid - low) * (2 * t), mid + (high - mid) * (2 * t - 1))
    alpha = np.where(v >= threshold, 0.3 + 0.45 * t[:, 0], 0.0)
    return (colour + 0.5).astype(np.uint8), alpha


@lru_cache(maxsize=16)
def _anchored_tables(threshold: float, top: float) -> tuple[list[int], list[int]]:
    """Palette and opacity of index 0 (below the threshold) and 1..255 (threshold .. top)."""
    levels = threshold + (top - threshold) * (np.arange(256) - 1) / 254.0
    levels[0] = threshold - 1.0
    colour, alpha = anchored_colours(levels, threshold, top)
    return [int(v) for v in colour.ravel()], [int(round(255 * a)) for a in alpha]


def blend_anchored(rgb: np.ndarray, score: np.ndarray, threshold: float, top: float) -> np.ndarray:
    """Raw scores over the image on the threshold-anchored scale (see `anchored_colours`).

    Args:
        rgb: (H, W, 3) uint8 image.
        score: (H, W) raw scores.
        threshold, top: the scale's anchors.
    Returns:
        (H, W, 3) uint8 blended image.
    """
    palette, opacity = _anchored_tables(float(threshold), float(top))
    s = np.nan_to_num(np.asarray(score, dtype=np.float32), nan=-np.inf)
    span = max(float(top) - float(threshold), 1e-6)
    above = 1 + np.floor(np.clip((s - threshold) / span, 0.0, 1.0) * 254.0)  # never rounds up past a level
    idx = Image.fromarray(np.where(s >= threshold, above, 0).astype(np.uint8), mode="L")
    heat = idx.copy()
    heat.putpalette(palette)
    heat = heat.convert("RGB")
    base = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    return np.asarray(Image.composite(heat, base, idx.point(opacity)))


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels on the border of a mask (inner edge, `width` px thick).

    Args:
        mask: (H, W) bool mask.
        width: border thickness in pixels.
    Returns:
        (H, W) bool border.
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return m
    return m & ~binary_erosion(m, iterations=max(1, width), border_value=0)


def paint(rgb: np.ndarray, where: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """A copy of the image with the chosen pixels set to one colour.

    Args:
        rgb: (H, W, 3) uint8 image.
        where: (H, W) bool pixels to paint.
        colour: (r, g, b).
    Returns:
        (H, W, 3) uint8 image.
    """
    out = rgb.copy()
    out[where] = colour
    return out


def dashed_rectangle(
    draw: ImageDraw.ImageDraw, xyxy: tuple[float, float, float, float], fill: tuple[int, int, int],
    width: int = 2, dash: int = 8,
) -> None:
    """Rectangle drawn as dashes (Pillow has no dash style)."""
    x0, y0, x1, y1 = xyxy
    for (ax, ay, bx, by) in ((x0, y0, x1, y0), (x1, y0, x1, y1), (x1, y1, x0, y1), (x0, y1, x0, y0)):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(1, int(length // dash))
        for i in range(0, steps, 2):
            t0, t1 = i / steps, min(1.0, (i + 1) / steps)
            draw.line(
                (ax + (bx - ax) * t0, ay + (by - ay) * t0, ax + (bx - ax) * t1, ay + (by - ay) * t1),
                fill=fill, width=width,
            )


def text_size(draw: ImageDraw.ImageDraw, text: str, fnt: ImageFont.ImageFont) -> tuple[int, int]:
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=fnt)
    return int(x1 - x0), int(y1 - y0)


Rect = tuple[float, float, float, float]


def overlaps(a: Rect, b: Rect) -> bool:
    """True when two (x0, y0, x1, y1) rectangles share any area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fnt: ImageFont.ImageFont,
    bg: tuple[int, int, int], fg: tuple[int, int, int] = (0, 0, 0), bounds: tuple[int, int] | None = None,
    taken: list[Rect] | None = None, bottom: float | None = None,
) -> Rect:
    """Text on a filled tag, placed above `xy` when there is room, else just inside; kept inside `bounds` (w, h).

    With `taken` (tags already drawn), the tag moves (inside the box, below its `bottom`, then down or up
    in steps of its own height) until it overlaps none of them, so neighbouring boxes never print over
    each other; the rectangle used is appended to `taken` and returned.
    """
    tw, th = text_size(draw, text, fnt)
    pad = max(2, th // 4)
    lw, lh = tw + 2 * pad, th + 2 * pad
    x0, y0 = float(xy[0]), float(xy[1])

    def clamp(x: float, y: float) -> tuple[float, float]:
        if bounds is not None:
            x = min(max(0.0, x), max(0.0, bounds[0] - lw))
            y = min(max(0.0, y), max(0.0, bounds[1] - lh))
        return x, y

    first = (x0, y0 - lh) if y0 - lh >= 0 else (x0, y0 + 1)
    candidates = [first, (x0, y0 + 1)] + ([(x0, bottom + 1)] if bottom is not None else [])
    candidates += [(x0, first[1] + k * (lh + 1)) for k in range(1, 25)]
    candidates += [(x0, first[1] - k * (lh + 1)) for k in range(1, 25)]
    x, y = clamp(*first)
    for cx, cy in candidates:
        cx, cy = clamp(cx, cy)
        if not taken or not any(overlaps((cx, cy, cx + lw, cy + lh), t) for t in taken):
            x, y = cx, cy
            break
    rect = (x, y, x + lw, y + lh)
    draw.rectangle(rect, fill=bg)
    draw.text((x + pad, y + pad - draw.textbbox((0, 0), text, font=fnt)[1]), text, font=fnt, fill=fg)
    if taken is not None:
        taken.append(rect)
    return rect


def placeholder(size: tuple[int, int], text: str) -> np.ndarray:
    """A grey tile saying why the real picture is missing (e.g. the source image moved).

    Args:
        size: (W, H) of the tile.
        text: the reason shown.
    Returns:
        (H, W, 3) uint8 tile.
    """
    img = Image.new("RGB", size, (70, 70, 74))
    draw = ImageDraw.Draw(img)
    fnt = font(max(10, min(size) // 14))
    tw, th = text_size(draw, text, fnt)
    draw.text(((size[0] - tw) / 2, (size[1] - th) / 2), text, font=fnt, fill=(220, 220, 220))
    return np.asarray(img)


def png_bytes(image: Image.Image | np.ndarray, compress_level: int = 1) -> bytes:
    """PNG encoding; level 1 is ~3x faster than Pillow's default for a few percent more bytes.

    Args:
        image: a Pillow image, or an (H, W) / (H, W, 3) uint8 array.
        compress_level: zlib level.
    Returns:
        The PNG file's bytes.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
