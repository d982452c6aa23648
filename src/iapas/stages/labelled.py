"""Verdict threshold from a few labelled parts, and how sure its error rates are given so few.

With good parts only, the threshold comes from their image scores by the same log-normal rule as the
normal images' (`stages.calibration.decision_from_maxima`: median x exp(z(1 - target) x spread), on raw
distances when the profile has them). With defective parts too, it is the point between the groups that
makes the fewest errors (false rejects weighed by 1, misses by 1), placed half way between the nearest
good and defective scores (on the excess-ratio scale of offline maps); when the groups separate, any
point between them makes none, and the middle one leaves both sides the same margin. Error rates come
with exact (Clopper-Pearson) 95% intervals: 0 of 5 good parts rejected still allows up to 52%.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rate:
    """k of n, with its exact 95% interval."""

    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def text(self) -> str:
        if self.n == 0:
            return "n/a (no parts)"
        return f"{self.k}/{self.n} = {100 * self.value:.0f}% (95% interval {100 * self.low:.0f}-{100 * self.high:.0f}%)"

    def to_json(self) -> dict[str, float | int]:
        return {"k": self.k, "n": self.n, "rate": round(self.value, 6) if self.n else None,
                "low95": round(self.low, 6), "high95": round(self.high, 6)}


def clopper_pearson(k: int, n: int, level: float = 0.95) -> Rate:
    """Exact binomial interval of k successes in n trials."""
    from scipy.stats import beta  # scipy.stats: slow to import, needed only for labelled calibration

    if n == 0:
        return Rate(0, 0, 0.0, 1.0)
    a = (1.0 - level) / 2.0
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return Rate(k, n, low, high)


def separating_threshold(good: Sequence[float], defect: Sequence[float]) -> float:
    """The threshold (on an increasing scale) with the fewest errors, half way between neighbouring scores.

    Args:
        good: scores of good parts; defect: scores of defective parts (both non-empty).

    Returns:
        A threshold t: parts with score >= t are defects.
    """
    g, d = np.sort(np.asarray(good, dtype=float)), np.sort(np.asarray(defect, dtype=float))
    values = np.unique(np.concatenate([g, d]))
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1.0]])
    errors = [(int((g >= c).sum()) + int((d < c).sum()), abs(c - np.median(values)), c) for c in candidates]
    best = min(e[0] for e in errors)
    tied = [c for e, _, c in errors if e == best]
    return float(tied[len(tied) // 2])  # the middle of the best run: the widest margin on both sides


def rates(good: Sequence[float], defect: Sequence[float], threshold: float) -> tuple[Rate, Rate]:
    """(false rejects among good parts, misses among defective parts) at `threshold`."""
    g, d = np.asarray(good, dtype=float), np.asarray(defect, dtype=float)
    return clopper_pearson(int((g >= threshold).sum()), g.size), clopper_pearson(int((d < threshold).sum()), d.size)
