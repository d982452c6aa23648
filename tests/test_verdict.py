"""The shared defect/ok decision."""
from __future__ import annotations

import numpy as np

from iapas.config import build_config
from iapas.context import Context
from iapas.types import Prediction
from iapas.verdict import decide


def _pred(score: float, profile: str) -> Prediction:
    smap = np.full((4, 4), score, dtype=np.float32)
    return Prediction(path="a.png", score_map=smap, mask=smap >= 0.5, boxes=[], image_score=score, profile=profile)


def test_offline_verdict_at_half() -> None:
    ctx = Context(profile="offline", config=build_config(profile="offline"))
    assert decide(_pred(0.49, "offline"), ctx).label == "ok"
    assert decide(_pred(0.5, "offline"), ctx).label == "defect"


def test_stored_threshold_wins_and_paper_uses_box_threshold() -> None:
    ctx = Context(profile="offline", config=build_config(profile="offline"), thresholds={"verdict": 0.8})
    assert decide(_pred(0.7, "offline"), ctx).label == "ok"
    paper = Context(profile="paper", config=build_config(profile="offline"), thresholds={"box_threshold": 0.2})
    v = decide(_pred(0.25, "paper"), paper)
    assert (v.label, v.threshold) == ("defect", 0.2)
    assert decide(_pred(0.0, "paper"), paper).label == "ok"
