"""Combine per-seed, per-category metrics into the metrics.json dict (mean over categories, mean ± std
over seeds); undefined values stay NaN in memory and become null in JSON.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from iapas.evaluation.protocols import ALL_KEYS as METRIC_KEYS


def _mean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or np.isnan(arr).all():
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(arr))


def _std(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(np.std(arr)) if arr.size else float("nan")


def official_round(value: float) -> float:
    """A fraction rounded as the official IAP-AS table rounds it: to 2 decimals in % (`round(ap * 100, 2)`).

    Args:
        value: a fraction in [0, 1] (NaN / inf pass through).

    Returns:
        The rounded fraction.
    """
    if not math.isfinite(value):
        return value
    return float(np.round(np.float64(value) * 100, 2)) / 100


def mean_row(rows: dict[str, dict[str, Any]], rounded: bool = False) -> dict[str, Any]:
    """Unweighted mean over categories (the papers' 'mean' row); counts are summed.

    Args:
        rows: category -> metrics row.
        rounded: (paper protocol) average each category's value rounded to 2 decimals in %, as the
            official table's mean row does.

    Returns:
        The mean row (NaN values left out of each mean).
    """
    shown = official_round if rounded else float
    out: dict[str, Any] = {k: _mean([shown(r.get(k, float("nan"))) for r in rows.values()]) for k in METRIC_KEYS}
    out["n_images"] = int(sum(r["n_images"] for r in rows.values()))
    out["n_anomalous"] = int(sum(r["n_anomalous"] for r in rows.values()))
    return out


def seed_averaged_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One category's row averaged over its seeds' rows: metrics, counts, operating points and notes.

    Args:
        rows: the category's metrics row of each seed.

    Returns:
        The averaged row (`thresholds` one dict, or a list when the seeds' points differ in number).
    """
    row: dict[str, Any] = {k: _mean([r.get(k, float("nan")) for r in rows]) for k in METRIC_KEYS}
    row["n_images"] = int(round(_mean([r["n_images"] for r in rows])))
    row["n_anomalous"] = int(round(_mean([r["n_anomalous"] for r in rows])))
    points = [r["thresholds"] for r in rows if r.get("thresholds")]
    if points:
        row["thresholds"] = points[0] if len(points) == 1 else points
    notes = sorted({n for r in rows for n in r.get("notes", [])})
    if notes:
        row["notes"] = notes
    return row


def combine_seeds(per_seed: dict[int, dict[str, dict[str, Any]]], rounded: bool = False) -> tuple[dict, dict, dict, dict]:
    """Seed-averaged rows and their spread over seeds.

    Args:
        per_seed: seed -> category -> metrics row.
        rounded: the mean rows average categories rounded as the official table (`mean_row`).

    Returns:
        (categories, mean, std_categories, std_mean).
    """
    seeds = sorted(per_seed)
    cats = sorted({c for s in seeds for c in per_seed[s]})
    categories: dict[str, dict[str, Any]] = {}
    std_cat: dict[str, dict[str, float]] = {}
    for c in cats:
        rows = [per_seed[s][c] for s in seeds if c in per_seed[s]]
        categories[c] = seed_averaged_row(rows)
        std_cat[c] = {k: _std([r.get(k, float("nan")) for r in rows]) for k in METRIC_KEYS}
    seed_means = [mean_row(per_seed[s], rounded) for s in seeds]
    mean = mean_row(categories, rounded)
    std_mean = {k: _std([m.get(k, float("nan")) for m in seed_means]) for k in METRIC_KEYS}
    return categories, mean, std_cat, std_mean


def json_safe(obj: Any) -> Any:
    """NaN / inf -> None recursively, so metrics.json is strict JSON.

    Args:
        obj: floats, dicts, lists, tuples and numpy scalars, nested.

    Returns:
        The same structure with non-finite floats as None and numpy scalars as Python values.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj
