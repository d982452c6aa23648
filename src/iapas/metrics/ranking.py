"""Threshold-free metrics on flat (scores, labels): AP, exact F1-max and AUROC, plus the paper's grid F1.

Degenerate inputs never crash: a metric that is undefined (no positives, no negatives) is NaN and the
reason is returned in `notes` by `pixel_metrics` and raised as a `MetricWarning` by the single functions.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from iapas.metrics.curve import RankCurve, curve_ap, curve_auroc, curve_f1, curve_f1_max, rank_curve


class MetricWarning(UserWarning):
    """A metric is undefined for this input (the value is NaN); the message says why."""


def degenerate_notes(curve: RankCurve) -> list[str]:
    """Why some metrics are undefined or trivial for this input."""
    notes = []
    if curve.n_pos == 0:
        notes.append("no positive samples: AP, F1-max and AUROC are undefined (NaN)")
    if curve.n_neg == 0:
        notes.append("no negative samples: AUROC is undefined (NaN)")
    if curve.thresholds.size == 1 and curve.n_pos and curve.n_neg:
        notes.append("all scores are equal: AP equals the positive rate, AUROC is 0.5")
    return notes


def pixel_metrics(scores: np.ndarray, labels: np.ndarray, f1_grid: int | None = None) -> dict[str, Any]:
    """AP, F1-max (with its threshold) and AUROC from one sort of the scores.

    Works for pixels (flattened maps) and images (one score per image) alike. With `f1_grid=n` the
    result also holds "f1_max_grid": F1-max over n evenly spaced thresholds in [0, 1] (the official
    IAP-AS code's search on normalised maps), read off the same sorted curve.

    Args:
        scores: (N,) scores (any shape; flattened).
        labels: (N,) bool or 0/1 labels, same size as `scores`.
        f1_grid: thresholds of the grid F1-max, or None for none.
    Returns:
        {"ap", "f1_max", "f1_threshold", "auroc", "n_pos", "n_neg", "notes"} (and "f1_max_grid" with `f1_grid`).
    """
    c = rank_curve(scores, labels)
    f1, thr = curve_f1_max(c)
    extra: dict[str, Any] = {}
    if f1_grid is not None:
        extra["f1_max_grid"] = _grid_f1(c, f1_grid)
    return {**extra,
        "ap": curve_ap(c),
        "f1_max": f1,
        "f1_threshold": thr,
        "auroc": curve_auroc(c),
        "n_pos": c.n_pos,
        "n_neg": c.n_neg,
        "notes": degenerate_notes(c),
    }


def _single(key: str, scores: np.ndarray, labels: np.ndarray) -> float:
    out = pixel_metrics(scores, labels)
    if np.isnan(out[key]):
        warnings.warn(f"{key}: " + "; ".join(out["notes"]), MetricWarning, stacklevel=3)
    return float(out[key])


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Same value as sklearn.metrics.average_precision_score(labels, scores).

    Args:
        scores: (N,) scores (any shape; flattened).
        labels: (N,) bool or 0/1 labels, same size as `scores`.
    """
    return _single("ap", scores, labels)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Same value as sklearn.metrics.roc_auc_score(labels, scores); NaN when one class is absent.

    Args:
        scores: (N,) scores (any shape; flattened).
        labels: (N,) bool or 0/1 labels, same size as `scores`.
    """
    return _single("auroc", scores, labels)


def f1_max(scores: np.ndarray, labels: np.ndarray) -> float:
    """Best F1 over every distinct threshold (exact, not a grid).

    Args:
        scores: (N,) scores (any shape; flattened).
        labels: (N,) bool or 0/1 labels, same size as `scores`.
    Returns:
        The best F1.
    """
    return _single("f1_max", scores, labels)


def f1_max_fixed_grid(scores: np.ndarray, labels: np.ndarray, n_thresholds: int = 100) -> float:
    """F1-max over `n_thresholds` evenly spaced thresholds in [0, 1] (the official IAP-AS code's search).

    Meant for min-max normalised maps; predicts positive where score >= t.

    Args:
        scores: (N,) scores in [0, 1] (any shape; flattened).
        labels: (N,) bool or 0/1 labels, same size as `scores`.
        n_thresholds: points of the grid.
    Returns:
        The best F1 on the grid.
    """
    return _grid_f1(rank_curve(scores, labels), n_thresholds)


def _grid_f1(c: RankCurve, n_thresholds: int) -> float:
    if c.n_pos == 0:
        return float("nan")
    tp, fp = c.counts_at(np.linspace(0.0, 1.0, n_thresholds))
    return float(np.max(curve_f1(tp, fp, c.n_pos)))
