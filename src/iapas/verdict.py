"""The per-image decision an inspector acts on: `defect` or `ok`, with the threshold that made it.

One function so that `run`, `segment`, the report, `serve` and the Ray engine all decide alike.
The threshold is on the image-score scale of the profile that made the prediction:
- a context stores its own calibrated decision threshold as `context.thresholds.verdict`, with the rule
  that made it in `context.thresholds.verdict_rule` (the offline profile calibrates it on the normal images'
  leave-one-out map maxima, or zero-shot on the batch: stages.calibration.decision_from_maxima);
- otherwise the profile's class gives it (`Profile.default_threshold`): 0.5 for calibrated maps (the mask
  threshold), the box threshold for box-confidence maps, where any kept box makes the image a defect.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


import numpy as np

from iapas.context import Context
from iapas.detections import Detections
from iapas.errors import SettingsError
from iapas.profiles.registry import profile_class
from iapas.settings import DEFAULT_TARGET_FRR, USER_VERDICT_MARK, Thresholds, kind_of, verdict_spread
from iapas.types import Prediction


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
    return profile_class(context.profile).default_threshold(context)


def display_top(context: Context, threshold: float | None = None) -> float:
    """Score at which the overlay's colour reaches full red (the threshold itself is where colour starts).

    Calibrated maps: full red where the distance to normal is twice the calibrated limit (score 2/3 for
    threshold 0.5); box-confidence maps: at 2.5 x the threshold (`Profile.display_scale`).
    """
    thr = decision_threshold(context) if threshold is None else float(threshold)
    return display_scale(context.profile, thr)[1]


def display_scale(profile: str, threshold: float) -> tuple[float, float]:
    """(threshold, top) of the overlay colours for maps of `profile` judged at `threshold`.

    Args:
        profile: a registered profile's name.
        threshold: the image-score threshold.

    Returns:
        (threshold, top): colour starts at the threshold and is full red at top.
    """
    return profile_class(profile).display_scale(threshold)


def decide(prediction: Prediction, context: Context) -> Verdict:
    """`defect` or `ok` for one prediction made with `context`.

    Args:
        prediction: the prediction (its image score).
        context: the context it was made with (its threshold, else its profile's default).

    Returns:
        The verdict with the score and the threshold used.
    """
    threshold = decision_threshold(context)
    score = float(prediction.image_score)
    return Verdict("defect" if score >= threshold else "ok", score, threshold)


def threshold_rule(context: Context) -> str:
    """How the context's verdict threshold was set, in one sentence."""
    th = context.thresholds
    if th is not None and th.verdict is not None:
        return th.verdict_rule or "thresholds.verdict of the context (set by hand)"
    return profile_class(context.profile).default_rule(context)


def with_verdict_threshold(context: Context, threshold: float | None) -> Context:
    """`context` judged at `threshold` instead of its own (None: unchanged); the mask threshold stays."""
    if threshold is None:
        return context
    if not 0.0 < float(threshold) <= 1e6:
        raise SettingsError(f"--verdict-threshold must be a positive number, got {threshold}")
    th = context.thresholds or Thresholds()
    update: dict[str, object] = {"verdict": float(threshold),
                                 "verdict_rule": f"verdict: image score >= {float(threshold):g}, {USER_VERDICT_MARK}"}
    return context.model_copy(update={"thresholds": th.model_copy(update=update)})


def settle(prediction: Prediction, verdict: Verdict) -> Prediction:
    """The prediction as an inspector gets it: an `ok` part has no region and an all-zero mask; a `defect`
    has at least one region (the component of score >= threshold around the map's peak when the profile
    kept none). The score map keeps its values."""
    # scipy and the region stage are deferred: every command imports this module, few settle a defect
    from scipy import ndimage

    from iapas.stages.regions import mask_regions

    if verdict.label == "ok":
        if len(prediction.boxes) == 0 and not prediction.mask.any():
            return prediction
        return replace(prediction, boxes=Detections.empty(), mask=np.zeros(prediction.mask.shape, dtype=bool))
    if len(prediction.boxes) > 0 and prediction.mask.any():
        return prediction
    score = prediction.score_map
    labels, _ = ndimage.label(score >= min(verdict.threshold, float(score.max())), structure=np.ones((3, 3), dtype=bool))
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    region = labels == labels[y, x]
    boxes, mask = mask_regions(score, region | prediction.mask, min_area=1)
    return replace(prediction, boxes=prediction.boxes if len(prediction.boxes) else boxes, mask=mask)


def _labelled_verdict(good: list[float], defect: list[float], frr: float, spread: float) -> tuple[float, str]:
    """(threshold, rule) on image scores as they are: between the groups, else the good parts' median x the
    log-normal factor of `frr` with `spread`."""
    from iapas.stages.calibration import verdict_factor
    from iapas.stages.labelled import separating_threshold  # deferred with scipy: only `iapas calibrate` needs it

    if defect:
        verdict = separating_threshold(good, defect)
        return verdict, (f"image score >= {verdict:.4f}: fewest errors between {len(good)} good and {len(defect)} "
                         "defective labelled parts, half way between the nearest of each (iapas calibrate)")
    factor = verdict_factor(spread, frr)
    verdict = float(np.median(good)) * factor
    return verdict, f"image score >= {verdict:.4f}: median of {len(good)} labelled good parts x {factor:.3f} (iapas calibrate)"


def recalibrated(context: Context, good: list[float], defect: list[float], target_frr: float | None = None,
                 ) -> tuple[Thresholds, dict[str, object]]:
    """The context's thresholds re-fitted on the image scores of labelled parts, and a report.

    Without defective parts the verdict follows the normal-image rule (stages.calibration) on the good parts'
    scores; with them, the fewest-errors point half way between the groups (stages.labelled). Offline
    contexts work on raw distances (the scale the rules were made for) and get a new mask threshold too.

    Args:
        context: a few-shot context (offline, paper or fused).
        good: image scores of good parts (at least one); defect: of defective parts (may be empty).
        target_frr: false-reject rate aimed at without defective parts (default: the context's, else 0.02).

    Returns:
        (new thresholds, report: scores, threshold, rule, false-reject and miss rates with 95% intervals).
    """
    # deferred with scipy: only `iapas calibrate` re-fits thresholds
    from iapas.stages.calibration import MASK_SHARE, decision_from_maxima, excess_ratio, score_of
    from iapas.stages.labelled import rates, separating_threshold

    if not good:
        raise ValueError("calibration needs at least one good part")
    th = context.thresholds or Thresholds()
    frr = float(target_frr if target_frr is not None else (th.target_frr or DEFAULT_TARGET_FRR))
    cal = context.reference.calibration
    offline = profile_class(context.profile).map_scale == "calibrated" and cal is not None and cal.threshold is not None
    kind = kind_of(context.config)
    spread = verdict_spread(kind, bool(context.reference.get("scales")))
    update: dict[str, object] = {"target_frr": frr}
    if offline:
        t, f = float(cal.threshold), float(cal.floor)  # type: ignore[union-attr, arg-type]
        raw = lambda s: f + (t - f) * float(excess_ratio(s))  # noqa: E731 - score -> raw distance
        if defect:
            cut = separating_threshold(excess_ratio(good).tolist(), excess_ratio(defect).tolist())
            verdict = cut / (1.0 + cut) if cut > 0 else min(min(good), min(defect)) / 2.0
            rule = (f"image score >= {verdict:.4f}: fewest errors between {len(good)} good and {len(defect)} defective "
                    "labelled parts, half way between the nearest of each (iapas calibrate)")
        else:
            d = decision_from_maxima([raw(s) for s in good], t, f, spread, frr, "labelled good parts")
            verdict, rule = d.verdict, d.rule.split("; mask")[0] + " (iapas calibrate)"
        mask_raw = min(raw(verdict), t + MASK_SHARE * (raw(verdict) - t))
        update["mask"] = round(score_of(mask_raw, t, f), 6)
    else:
        verdict, rule = _labelled_verdict(good, defect, frr, spread)
    verdict = float(max(verdict, 1e-6))
    update.update({"verdict": round(verdict, 6), "verdict_rule": rule})
    new = th.model_copy(update=update)
    false_rejects, misses = rates(good, defect, verdict)
    report: dict[str, object] = {
        "good_scores": [round(float(s), 6) for s in good], "defect_scores": [round(float(s), 6) for s in defect],
        "threshold": round(verdict, 6), "previous_threshold": None if th.verdict is None else th.verdict,
        "rule": rule, "false_reject": false_rejects.to_json(), "miss": misses.to_json(),
        "false_reject_text": false_rejects.text(), "miss_text": misses.text(),
    }
    return new, report
