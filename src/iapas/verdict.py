"""The per-image decision an inspector acts on: `defect` or `ok`, with the threshold that made it.

One function so that `run`, `segment`, the report, `serve` and the Ray engine all decide alike.
The threshold is on the image-score scale of the profile that made the prediction:
- a context may store its own calibrated decision threshold as `context.thresholds.verdict`;
- otherwise the offline profile's maps are calibrated so that 0.5 is the mask threshold, and the
  paper/fused profiles' image score is the largest sum of box confidence x mask, so any kept box
  (confidence >= the box threshold) makes the image a defect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iapas.context import Context
from iapas.settings import thresholds
from iapas.types import Prediction

OFFLINE_MAP_THRESHOLD = 0.5


@dataclass(frozen=True)
class Verdict:
    """`label` is "defect" when `score` >= `threshold`."""

    label: Literal["defect", "ok"]
    score: float
    threshold: float

    def to_json(self) -> dict[str, float | str]:
        return {"verdict": self.label, "image_score": round(self.score, 6), "threshold": round(self.threshold, 6)}


def decision_threshold(context: Context) -> float:
    """The image-score threshold of this context (see the module docstring for the rule)."""
    th = context.thresholds
    if th is not None and th.verdict is not None:
        return float(th.verdict)
    if context.profile == "offline":
        return OFFLINE_MAP_THRESHOLD
    if th is None or th.box_threshold is None:  # a runner that stores none: what its own config resolves to
        th = thresholds(context.config)
    return float(th.box_threshold)  # type: ignore[arg-type]


def display_top(context: Context, threshold: float | None = None) -> float:
    """Score at which the overlay's colour reaches full red (the threshold itself is where colour starts).

    Why: an offline score is d/(d+t), so the whole useful range is about 0.4-0.7; on a 0-1 scale every map
    looks the same. Offline: full red where the distance to normal is twice the calibrated limit (d = 2t,
    score 2/3 for threshold 0.5). Paper/fused: box confidences rarely pass 0.5, so full red at 2.5 x the
    box threshold (0.5 for objects, 0.25 for textures).
    """
    thr = decision_threshold(context) if threshold is None else float(threshold)
    return display_scale(context.profile, thr)[1]


def display_scale(profile: str, threshold: float) -> tuple[float, float]:
    """(threshold, top) of the overlay colours for maps of `profile` judged at `threshold` (see display_top)."""
    top = threshold + (1.0 - threshold) / 3.0 if profile == "offline" else 2.5 * threshold
    return float(threshold), float(min(1.0, max(top, threshold + 0.05)))


def decide(prediction: Prediction, context: Context) -> Verdict:
    """`defect` or `ok` for one prediction made with `context`."""
    threshold = decision_threshold(context)
    score = float(prediction.image_score)
    return Verdict("defect" if score >= threshold else "ok", score, threshold)
