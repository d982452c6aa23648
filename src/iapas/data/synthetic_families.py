"""Synthetic development sets for the families where a plain patch bank is weak.

Why: the development data (MTD, MVTec-AD bottle) has few of these cases, so each family is drawn here,
deterministically, with exact masks (pixels change only inside the mask):

- `parts`: an aligned object (a board with coloured parts at fixed places, +-2 px jitter) whose defects
  are a part moved to an empty place, a missing part, two parts swapped, or a part doubled. Every defect
  patch looks like some normal patch somewhere, so only its position makes it abnormal.
- `strip`: long brushed-metal strips (aspect 2.5, short side above the network size) with a 1-2 px crack.
- `fine`: a fine high-frequency weave with a blurred ellipse (same mean brightness: only the loss of
  high frequencies is the defect).
- `tiles`: textured tiles whose brightness and illumination gradient vary from tile to tile (not a
  defect), with faint holes, cracks and stains.

Layout written: the `folder` layout of `iapas.data.synthetic` (ROOT/<family>/normal, test, masks, plus
defects.json naming each test image's defect).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter
from skimage import draw

from iapas.data.synthetic import SyntheticCategory, _polyline_mask

FAMILIES = ("parts", "strip", "fine", "tiles")
FAMILY_KINDS = {"parts": "object", "strip": "texture", "fine": "texture", "tiles": "texture"}
PART_DEFECTS = ("moved", "missing", "swapped", "extra")

# parts layout on a 192x192 board: (kind, centre y, centre x, half-height, half-width, RGB)
BOARD = 192
PARTS: tuple[tuple[str, int, int, int, int, tuple[int, int, int]], ...] = (
    ("rect", 40, 44, 10, 18, (200, 200, 190)),
    ("rect", 40, 140, 10, 18, (200, 200, 190)),
    ("disk", 96, 56, 14, 14, (60, 60, 70)),
    ("rect", 96, 136, 18, 10, (180, 120, 60)),
    ("disk", 150, 44, 9, 9, (200, 170, 60)),
    ("rect", 150, 120, 8, 28, (40, 40, 40)),
)
# empty board places a moved or extra part may go to (centre y, x), clear of every part
FREE_SPOTS = ((96, 96), (20, 92), (172, 92), (120, 170), (70, 100))


def _board(rng: np.random.Generator) -> np.ndarray:
    """The board without parts: green solder mask, a fixed grid of traces, per-image noise."""
    img = np.empty((BOARD, BOARD, 3), dtype=np.float32)
    img[...] = (30, 90, 50)
    img[::16, :] += 25
    img[:, ::16] += 25
    img += rng.normal(0, 4, size=(BOARD, BOARD, 1))
    return img


def _footprint(kind: str, cy: float, cx: float, hh: int, hw: int) -> np.ndarray:
    mask = np.zeros((BOARD, BOARD), dtype=bool)
    if kind == "disk":
        rr, cc = draw.disk((cy, cx), hh, shape=mask.shape)
    else:
        rr, cc = draw.rectangle((int(cy - hh), int(cx - hw)), (int(cy + hh), int(cx + hw)), shape=mask.shape)
    mask[rr, cc] = True
    return mask


def _paint(img: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int], rng: np.random.Generator) -> None:
    img[mask] = np.asarray(rgb, dtype=np.float32) + rng.normal(0, 3, size=(int(mask.sum()), 1))
    edge = binary_dilation(mask, iterations=1) & ~mask  # a dark rim, as a part's shadow
    img[edge] *= 0.6


def make_parts_image(rng: np.random.Generator, defect: str | None) -> tuple[np.ndarray, np.ndarray]:
    """One board and its defect mask.

    Args:
        rng: the generator every random choice comes from.
        defect: the defect kind, or None for a normal board.
    Returns:
        The (H, W, 3) uint8 RGB board and its (H, W) bool mask (empty for a normal board).
    """
    img = _board(rng)
    dy, dx = rng.integers(-2, 3, size=2)
    places = [(cy + dy, cx + dx) for _, cy, cx, _, _, _ in PARTS]
    kinds = list(range(len(PARTS)))
    drawn = [True] * len(PARTS)
    mask = np.zeros((BOARD, BOARD), dtype=bool)
    extra: tuple[int, tuple[float, float]] | None = None
    if defect == "moved" or defect == "extra":
        i = int(rng.integers(len(PARTS)))
        spot = FREE_SPOTS[int(rng.integers(len(FREE_SPOTS)))]
        if defect == "moved":
            mask |= _footprint(PARTS[i][0], *places[i], PARTS[i][3], PARTS[i][4])
            drawn[i] = False
        extra = (i, (spot[0] + dy, spot[1] + dx))
    elif defect == "missing":
        i = int(rng.integers(len(PARTS)))
        drawn[i] = False
        mask |= binary_dilation(_footprint(PARTS[i][0], *places[i], PARTS[i][3], PARTS[i][4]), iterations=1)
    elif defect == "swapped":
        i, j = rng.choice(len(PARTS), size=2, replace=False)
        kinds[i], kinds[j] = kinds[j], kinds[i]
        for a in (i, j):
            k = kinds[a]
            mask |= _footprint(PARTS[k][0], *places[a], PARTS[k][3], PARTS[k][4])
            mask |= _footprint(PARTS[a][0], *places[a], PARTS[a][3], PARTS[a][4])
    elif defect is not None:
        raise ValueError(f"unknown parts defect {defect!r}; available: {', '.join(PART_DEFECTS)}")
    for a, k in enumerate(kinds):
        if drawn[a]:
            pj = rng.integers(-1, 2, size=2)
            kind, _, _, hh, hw, rgb = PARTS[k]
            _paint(img, _footprint(kind, places[a][0] + pj[0], places[a][1] + pj[1], hh, hw), rgb, rng)
    if extra is not None:
        k, (cy, cx) = extra
        kind, _, _, hh, hw, rgb = PARTS[k]
        fp = _footprint(kind, cy, cx, hh, hw)
        _paint(img, fp, rgb, rng)
        mask |= binary_dilation(fp, iterations=1)
    if defect == "missing":
        pass  # the bare board shows where the part was; the mask covers its footprint and rim
    out = np.clip(img, 0, 255).astype(np.uint8)
    return out, mask


def _strip_surface(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Brushed metal: horizontal streaks, fine grain, a slow brightness drift along the strip."""
    h, w = shape
    streaks = gaussian_filter(rng.normal(0, 1, size=(h, w)), sigma=(0.6, 12.0)) * 60
    grain = gaussian_filter(rng.normal(0, 1, size=(h, w)), sigma=0.7) * 8
    drift = np.linspace(0, 1, w)[None, :] * rng.uniform(-15, 15)
    return 120 + rng.uniform(-10, 10) + streaks + grain + drift


def make_strip_image(rng: np.random.Generator, defect: bool, shape: tuple[int, int] = (352, 880)) -> tuple[np.ndarray, np.ndarray]:
    """A long strip and the mask of its 1-2 px crack.

    Args:
        rng: the generator every random choice comes from.
        defect: draw a crack or not.
        shape: (H, W) of the strip.
    Returns:
        The (H, W) uint8 grey strip and its (H, W) bool mask (empty when `defect` is False).
    """
    img = _strip_surface(rng, shape)
    mask = np.zeros(shape, dtype=bool)
    if defect:
        h, w = shape
        y, x = rng.uniform(0.2, 0.8) * h, rng.uniform(0.15, 0.85) * w
        angle = rng.uniform(np.pi / 4, 3 * np.pi / 4)  # across the strip's streaks, as cracks run
        length = rng.uniform(60, 160)
        for _ in range(4):
            angle += rng.uniform(-0.4, 0.4)
            y2 = float(np.clip(y + np.sin(angle) * length / 4, 2, h - 3))
            x2 = float(np.clip(x + np.cos(angle) * length / 4, 2, w - 3))
            rr, cc = draw.line(int(y), int(x), int(y2), int(x2))
            mask[rr, cc] = True
            y, x = y2, x2
        if rng.uniform() < 0.5:
            mask = binary_dilation(mask, structure=np.ones((1, 2), dtype=bool))  # 2 px wide
        img[mask] = img[mask] * 0.55
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _weave(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A fine weave: 4 px gratings in both directions plus sharp grain (high frequencies only)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    grating = np.sin(2 * np.pi * xx / 4 + phase[0]) * np.sin(2 * np.pi * yy / 4 + phase[1])
    grain = gaussian_filter(rng.normal(0, 1, size=shape), sigma=0.5)
    return 128 + 40 * grating + 25 * grain / (grain.std() + 1e-6)


def make_fine_image(rng: np.random.Generator, defect: bool, shape: tuple[int, int] = (256, 256)) -> tuple[np.ndarray, np.ndarray]:
    """A fine weave and the mask of its blurred ellipse (same mean brightness inside as outside).

    Args:
        rng: the generator every random choice comes from.
        defect: draw the ellipse or not.
        shape: (H, W) of the image.
    Returns:
        The (H, W) uint8 grey weave and its (H, W) bool mask (empty when `defect` is False).
    """
    img = _weave(rng, shape)
    mask = np.zeros(shape, dtype=bool)
    if defect:
        h, w = shape
        cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
        rr, cc = draw.ellipse(cy, cx, rng.uniform(14, 30), rng.uniform(8, 18), shape=shape, rotation=rng.uniform(0, np.pi))
        mask[rr, cc] = True
        alpha = np.where(mask, np.clip(gaussian_filter(mask.astype(np.float32), 2.0) * 1.5, 0, 1), 0.0)
        blurred = gaussian_filter(img, sigma=2.0)
        img = img * (1 - alpha) + blurred * alpha
    return np.clip(img, 0, 255).astype(np.uint8), mask


TILE_DEFECTS = ("hole", "crack", "stain")


def _tile_surface(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A pressed-powder tile surface: fine grain over a slow mottling (float, mean ~120)."""
    grain = gaussian_filter(rng.normal(0, 1, size=shape), 1.2)
    mottle = gaussian_filter(rng.normal(0, 1, size=shape), 12.0)
    return 120 + 14 * grain / (grain.std() + 1e-6) + 6 * mottle / (mottle.std() + 1e-6)


def make_tile_image(rng: np.random.Generator, defect: str | None, gain_range: tuple[float, float],
                    shape: tuple[int, int] = (224, 224)) -> tuple[np.ndarray, np.ndarray]:
    """A tile whose gain and illumination gradient vary, with a faint defect or none.

    Args:
        rng: the generator every random choice comes from.
        defect: the defect kind, or None for a normal tile.
        gain_range: (low, high) of the random gain.
        shape: (H, W) of the tile.
    Returns:
        The (H, W) uint8 grey tile and its (H, W) bool mask (empty for a normal tile).
    """
    h, w = shape
    img = _tile_surface(rng, shape)
    mask = np.zeros(shape, dtype=bool)
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    if defect == "hole":
        rr, cc = draw.ellipse(cy, cx, rng.uniform(5, 10), rng.uniform(5, 10), shape=shape)
        mask[rr, cc] = True
        img[mask] *= 0.55
    elif defect == "crack":
        mask = _polyline_mask(shape, rng, width=2, bends=3)
        img[mask] *= 0.6
    elif defect == "stain":
        rr, cc = draw.ellipse(cy, cx, rng.uniform(10, 20), rng.uniform(8, 14), shape=shape, rotation=rng.uniform(0, np.pi))
        mask[rr, cc] = True
        img[mask] = 0.6 * img[mask] + 0.4 * 170.0
    elif defect is not None:
        raise ValueError(f"unknown tile defect {defect!r}; available: {', '.join(TILE_DEFECTS)}")
    gain = rng.uniform(*gain_range)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    slope = rng.uniform(-0.25, 0.25, size=2)
    light = 1 + slope[0] * (yy / h - 0.5) + slope[1] * (xx / w - 0.5)
    return np.clip(img * gain * light, 0, 255).astype(np.uint8), mask


def make_family(root: str | Path, family: str, n_normal: int = 10, n_test: int = 12,
                anomalous_fraction: float = 0.75, seed: int = 0) -> SyntheticCategory:
    """Write one family in the folder layout under root/<family>; the same seed writes the same files."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; available: {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    cat = SyntheticCategory(name=family, root=Path(root) / family)
    n_bad = int(round(anomalous_fraction * n_test))

    def one(defect_index: int | None, normal: bool) -> tuple[np.ndarray, np.ndarray, str]:
        if family == "parts":
            kind = None if defect_index is None else PART_DEFECTS[defect_index % len(PART_DEFECTS)]
            img, mask = make_parts_image(rng, kind)
        elif family == "strip":
            kind = None if defect_index is None else "crack"
            img, mask = make_strip_image(rng, kind is not None)
        elif family == "fine":
            kind = None if defect_index is None else "blur"
            img, mask = make_fine_image(rng, kind is not None)
        else:
            kind = None if defect_index is None else TILE_DEFECTS[defect_index % len(TILE_DEFECTS)]
            img, mask = make_tile_image(rng, kind, (0.8, 1.2) if normal else (0.6, 1.4))
        return img, mask, kind or "good"

    for _ in range(n_normal):
        cat.add_normal(one(None, normal=True)[0])
    for i in range(n_test):
        cat.add_test(*one(i if i < n_bad else None, normal=False))
    cat.write_defects()
    return cat


def make_families(root: str | Path, families: tuple[str, ...] = FAMILIES, n_normal: int = 10, n_test: int = 12,
                  seed: int = 0) -> list[SyntheticCategory]:
    """Every family under `root` (one folder each)."""
    return [make_family(root, f, n_normal, n_test, seed=seed) for f in families]
