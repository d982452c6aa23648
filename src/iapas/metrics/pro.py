"""AUPRO: area under the per-region-overlap vs false-positive-rate curve up to FPR 0.3, normalised.

Follows the MVTec AD reference (generic_util.compute_pro / trapezoid): ground-truth regions are
connected components with a 3x3 structure of ones; each region counts equally; the FPR runs over
every normal pixel of every image; the curve is integrated with the trapezoid rule, interpolated at
the FPR limit, and divided by the limit.

Exactness without a threshold grid: FPR only moves at scores of normal pixels, so the curve's area
is a sum over the distinct normal scores v of the segment from (FPR(>v), PRO(>v)) to (FPR(>=v),
PRO(>=v)); PRO at those points comes from the (few) anomalous pixels by a weighted cumulative sum.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

_STRUCTURE = np.ones((3, 3), dtype=int)


def _collect(maps: Sequence[np.ndarray] | np.ndarray, masks: Sequence[np.ndarray] | np.ndarray):
    """Normal-pixel scores and anomalous-pixel scores with their per-region weights."""
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    normal_parts: list[np.ndarray] = []
    anom_scores: list[np.ndarray] = []
    anom_region: list[np.ndarray] = []
    region_sizes: list[np.ndarray] = []
    offset = 0
    for m, g in zip(maps, masks):
        m = np.asarray(m)
        g = np.asarray(g).astype(bool)
        if m.shape != g.shape:
            raise ValueError(f"map shape {m.shape} differs from mask shape {g.shape}")
        normal_parts.append(m[~g])
        if g.any():
            lab, n = ndimage.label(g, structure=_STRUCTURE)
            sel = lab > 0
            anom_scores.append(m[sel])
            anom_region.append(lab[sel].astype(np.int64) - 1 + offset)
            region_sizes.append(np.bincount(lab[sel].ravel())[1:])
            offset += n
    normal = np.concatenate(normal_parts) if normal_parts else np.empty(0, np.float32)
    del normal_parts
    if offset == 0:
        return normal, np.empty(0), np.empty(0), 0
    sizes = np.concatenate(region_sizes)
    region = np.concatenate(anom_region)
    weights = 1.0 / (offset * sizes[region])
    return normal, np.concatenate(anom_scores), weights, offset


def _top_normals(normal: np.ndarray, fpr_limit: float | None) -> np.ndarray:
    """Normal scores that can matter below `fpr_limit`, sorted ascending.

    The curve beyond the limit is never integrated, so only the largest floor(limit * N) + 1 normal
    scores (plus ties of the smallest of them) are kept. A full vectorised sort followed by a slice
    measured faster than np.partition plus a smaller sort.
    """
    ordered = np.sort(normal)
    n = ordered.size
    m = n if fpr_limit is None else int(np.floor(fpr_limit * n)) + 1
    if m >= n:
        return ordered
    cut = int(np.searchsorted(ordered, ordered[n - m], side="left"))
    return ordered[cut:]


def pro_curve(maps, masks, fpr_limit: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) vertices in increasing FPR order, starting at (0, PRO above the top normal score).

    Args:
        maps: N score maps, each (H, W) (or one (N, H, W) array).
        masks: N ground-truth masks, each (H, W) bool, same size as its map.
        fpr_limit: stop at the first vertex beyond this FPR; None for the whole curve.
    Returns:
        (T,) FPR and (T,) PRO; both empty when there is no defect region or no normal pixel.
    """
    normal, a_scores, a_weights, n_regions = _collect(maps, masks)
    if n_regions == 0 or normal.size == 0:
        return np.empty(0), np.empty(0)
    n_normal = normal.size
    dtype = np.result_type(normal.dtype, a_scores.dtype, np.float32)
    top = _top_normals(normal.astype(dtype, copy=False), fpr_limit)
    del normal
    a_scores = a_scores.astype(dtype, copy=False)
    starts = np.flatnonzero(np.concatenate(([True], top[1:] != top[:-1])))
    values = top[starts][::-1]  # distinct normal scores, decreasing
    n_ge = (top.size - starts)[::-1]
    fpr_ge = n_ge / n_normal
    fpr_gt = np.concatenate(([0.0], fpr_ge[:-1]))
    order = np.argsort(a_scores, kind="stable")
    a_sorted = a_scores[order]
    # weight of anomalous pixels with score >= x = total - (weight of those < x)
    cw = np.concatenate(([0.0], np.cumsum(a_weights[order])))
    total = cw[-1]
    pro_ge = total - cw[np.searchsorted(a_sorted, values, side="left")]
    pro_gt = total - cw[np.searchsorted(a_sorted, values, side="right")]
    fpr = np.empty(2 * values.size)
    pro = np.empty(2 * values.size)
    fpr[0::2], fpr[1::2] = fpr_gt, fpr_ge
    pro[0::2], pro[1::2] = pro_gt, pro_ge
    return fpr, np.clip(pro, 0.0, 1.0)


def area_to_limit(fpr: np.ndarray, pro: np.ndarray, limit: float) -> float:
    """Trapezoid area of the curve for FPR in [0, limit], linearly interpolated at the limit.

    Args:
        fpr, pro: (T,) the curve's points, FPR increasing.
        limit: the FPR the area stops at.
    Returns:
        The area (not normalised).
    """
    keep = fpr <= limit
    x, y = fpr[keep], pro[keep]
    area = float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))
    nxt = int(np.count_nonzero(keep))
    if nxt < fpr.size and x.size and x[-1] < limit:
        x0, y0, x1, y1 = x[-1], y[-1], fpr[nxt], pro[nxt]
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        area += 0.5 * (y0 + y_lim) * (limit - x0)
    return area


def aupro(maps: Sequence[np.ndarray] | np.ndarray, masks: Sequence[np.ndarray] | np.ndarray, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve up to `fpr_limit`.

    Args:
        maps: N score maps, each (H, W) (or one (N, H, W) array); sizes may differ between images.
        masks: N ground-truth masks, each (H, W) bool, same size as its map.
        fpr_limit: the false positive rate the area stops at.
    Returns:
        AUPRO in [0, 1]; NaN when there is no defect region or no normal pixel.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError("fpr_limit must be in (0, 1]")
    fpr, pro = pro_curve(maps, masks, fpr_limit)
    if fpr.size == 0:
        return float("nan")
    return area_to_limit(fpr, pro, fpr_limit) / fpr_limit
