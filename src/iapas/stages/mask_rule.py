"""Which pixels of a part judged defective form its mask: one rule for the written masks and the figures.

The score map is smoothed (patch footprint, Gaussian sigma), so a uniform defect shows as a plateau
with a shoulder around it; cut at half its peak, a small plateau's mask is about twice the defect. A
blurred step edge lies half way between the level on either side of it, so a plateau region is cut
again half way between the level of a thin ring around it and its own peak. A region that rises
gradually to its peak (its median excess well under the peak's: large, graded defects such as uneven
texture) keeps the first cut, which the re-cut would shrink to its core. Which regions count as plateaus
is a property of the kind's maps: objects' defect maps are graded, so only textures re-cut
(`settings.MASK_PLATEAU`, docs/offline-tuning.md).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from iapas.stages.calibration import excess_ratio, mask_cut

EIGHT = np.ones((3, 3), dtype=bool)
RING_FRACTION = 0.023  # width of the ring around a region, as a share of the map's shorter side (6 px at 256)
RECUT_SHARE = 0.5  # where between the ring's level and the peak a plateau region is cut (a blurred edge: half way)


def plateau_recut(score: np.ndarray, mask: np.ndarray, plateau: float,
                  ring_fraction: float = RING_FRACTION) -> np.ndarray:
    """`mask` with each plateau region cut half way between the level around it and its peak.

    Args:
        score: (H, W) calibrated scores.
        mask: (H, W) bool first cut.
        plateau: a region is a plateau when its median excess is at least this share of its peak excess.
        ring_fraction: ring width over the map's shorter side (at least one pixel).

    Returns:
        (H, W) bool mask, a subset of `mask` (every region keeps at least its peak pixel).
    """
    labels, n = ndimage.label(mask, structure=EIGHT)
    if n == 0:
        return mask
    width = max(1, int(round(ring_fraction * min(score.shape))))
    out = np.zeros(mask.shape, dtype=bool)
    h, w = score.shape
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        y0, y1 = max(sl[0].start - width - 1, 0), min(sl[0].stop + width + 1, h)
        x0, x1 = max(sl[1].start - width - 1, 0), min(sl[1].stop + width + 1, w)
        region = labels[y0:y1, x0:x1] == k
        x = excess_ratio(score[y0:y1, x0:x1])
        inside = x[region]
        peak = float(inside.max())
        ring = ndimage.binary_dilation(region, structure=EIGHT, iterations=width) & ~region
        if not ring.any() or float(np.median(inside)) < plateau * peak:
            out[y0:y1, x0:x1] |= region
            continue
        level = float(np.median(x[ring]))
        cut = min(level + RECUT_SHARE * max(peak - level, 0.0), peak)
        out[y0:y1, x0:x1] |= region & (x >= cut)
    return out


def defect_pixels(score: np.ndarray, peak: float, mask: float, mask_relative: float,
                  plateau: float | None = None) -> np.ndarray:
    """The candidate mask of a part judged defective (before the minimum region size).

    Args:
        score: (H, W) calibrated scores; peak: its maximum.
        mask, mask_relative: the context's mask threshold and share of the peak's excess (`mask_cut`).
        plateau: the kind's plateau share (None: no re-cut).

    Returns:
        (H, W) bool.
    """
    first = score >= mask_cut(peak, mask, mask_relative)
    return first if plateau is None else plateau_recut(score, first, plateau)


MIN_REGION_FRACTION = 2e-4  # components smaller than this fraction of the image are noise
MIN_REGION_PIXELS = 4


def min_region_area(pixels: int) -> int:
    """The smallest region (in pixels) a map of `pixels` pixels keeps in its mask."""
    return max(MIN_REGION_PIXELS, int(MIN_REGION_FRACTION * pixels))


def keep_regions(score: np.ndarray, pixels: np.ndarray, min_area: int) -> np.ndarray:
    """Components of `pixels` of at least `min_area` pixels; when none is that large, the one holding the
    peak (a defect always has a region)."""
    labels, n = ndimage.label(pixels, structure=EIGHT)
    if n == 0:
        out = np.zeros(score.shape, dtype=bool)
        out[np.unravel_index(int(np.argmax(score)), score.shape)] = True
        return out
    sizes = np.bincount(labels.ravel())
    big = sizes >= min_area
    big[0] = False
    if big.any():
        return big[labels]
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    return labels == labels[y, x] if labels[y, x] else labels == (1 + int(np.argmax(sizes[1:])))
