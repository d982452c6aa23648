"""One sort of the scores gives the whole ranking curve; AP, F1-max and AUROC are read off it.

scikit-learn sorts once per metric (argsort, mergesort); for evaluation at 256x256 over a whole
dataset that is tens of millions of pixels and three argsorts. Here one `np.sort` of the score values
(several times faster than an argsort; float32 when the scores fit it exactly) gives the distinct
thresholds and how many pixels share each; the positives (a few percent of pixels) are placed into
those groups by binary search. Values match scikit-learn's definitions exactly (ties share one
threshold).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RankCurve:
    """Counts at every distinct score, thresholds in decreasing order (predict positive if score >= t)."""

    thresholds: np.ndarray  # float64, strictly decreasing
    tps: np.ndarray  # int64: positives with score >= threshold
    fps: np.ndarray  # int64: negatives with score >= threshold
    n_pos: int
    n_neg: int

    def counts_at(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tp, fp) when predicting score >= t for arbitrary thresholds t (e.g. a fixed grid).

        Args:
            thresholds: (G,) thresholds, any order.
        Returns:
            (G,) int64 true positives and (G,) int64 false positives.
        """
        t = np.asarray(thresholds, dtype=np.float64)
        asc = self.thresholds[::-1]
        # index of the smallest distinct score >= t; none -> nothing predicted positive
        idx = np.searchsorted(asc, t, side="left")
        tp = np.zeros(t.shape, dtype=np.int64)
        fp = np.zeros(t.shape, dtype=np.int64)
        ok = idx < asc.size
        rev = asc.size - 1 - idx[ok]
        tp[ok] = self.tps[rev]
        fp[ok] = self.fps[rev]
        return tp, fp


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in size ({s.size} vs {y.size})")
    if s.size == 0:
        raise ValueError("no scores given")
    if y.dtype != bool:
        u = np.unique(y)
        if not np.isin(u, (0, 1)).all():
            raise ValueError(f"labels must be 0/1 or bool, got values {u[:5].tolist()}")
        y = y.astype(bool)
    if s.dtype.kind not in "fiub":
        raise ValueError(f"scores must be numeric, got {s.dtype}")
    if s.dtype.kind == "f" and not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    return s, y


def _sort_dtype(s: np.ndarray) -> type:
    """float32 when every score is exactly representable in it (faster sort), else float64."""
    if s.dtype in (np.float32, np.float16, np.bool_, np.uint8, np.int8, np.uint16, np.int16):
        return np.float32
    if s.dtype.kind in "iu" and s.size and np.abs(s).max() < 2**24:
        return np.float32
    if s.dtype.kind == "f" and np.array_equal(s.astype(np.float32).astype(s.dtype), s):
        return np.float32
    return np.float64


def rank_curve(scores: np.ndarray, labels: np.ndarray) -> RankCurve:
    """Cumulative positives/negatives at every distinct score, from one sort of the scores.

    The scores are sorted once (values only, no argsort); the positives are then placed into the
    distinct-score groups by a binary search of their own (few) scores, and counted with bincount.

    Args:
        scores: (N,) scores (any shape; flattened).
        labels: (N,) bool or 0/1 labels, same size as `scores`.
    Returns:
        The curve: (T,) distinct thresholds, decreasing, with the (T,) positive and negative counts at each.
    """
    s, y = _check(scores, labels)
    n = s.size
    f = s.astype(_sort_dtype(s), copy=False)
    ordered = np.sort(f)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    values = ordered[starts]
    del ordered
    group_of_pos = np.searchsorted(values, f[y])  # exact: every positive score is one of the values
    pos_per = np.bincount(group_of_pos, minlength=values.size)
    all_per = np.diff(np.append(starts, n))
    tps = np.cumsum(pos_per[::-1], dtype=np.int64)
    alls = np.cumsum(all_per[::-1], dtype=np.int64)
    n_pos = int(tps[-1])
    return RankCurve(
        thresholds=values[::-1].astype(np.float64),
        tps=tps,
        fps=alls - tps,
        n_pos=n_pos,
        n_neg=n - n_pos,
    )


def curve_ap(c: RankCurve) -> float:
    """Average precision as scikit-learn defines it: sum_n (R_n - R_{n-1}) P_n, no interpolation."""
    if c.n_pos == 0:
        return float("nan")
    precision = c.tps / (c.tps + c.fps)
    recall = c.tps / c.n_pos
    d_recall = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(d_recall * precision))


def curve_auroc(c: RankCurve) -> float:
    """Area under the ROC by the trapezoid rule (ties count one half, like scikit-learn)."""
    if c.n_pos == 0 or c.n_neg == 0:
        return float("nan")
    tpr = np.concatenate(([0.0], c.tps / c.n_pos))
    fpr = np.concatenate(([0.0], c.fps / c.n_neg))
    return float(np.trapezoid(tpr, fpr))


def curve_f1(tps: np.ndarray, fps: np.ndarray, n_pos: int) -> np.ndarray:
    """F1 = 2TP / (TP + FP + P) at each threshold (0 where nothing is predicted).

    Args:
        tps, fps: (T,) true and false positives at each threshold.
        n_pos: P, the number of positives.
    Returns:
        (T,) float64 F1 at each threshold.
    """
    denom = tps + fps + n_pos
    return np.divide(2.0 * tps, denom, out=np.zeros(tps.shape, dtype=np.float64), where=denom > 0)


def curve_f1_max(c: RankCurve) -> tuple[float, float]:
    """Best F1 over every threshold and the threshold that gives it."""
    if c.n_pos == 0:
        return float("nan"), float("nan")
    f1 = curve_f1(c.tps, c.fps, c.n_pos)
    i = int(np.argmax(f1))
    return float(f1[i]), float(c.thresholds[i])
