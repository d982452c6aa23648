"""`iapas demo` end to end on a reduced set: data in the folder layout, metrics, overlays, summary."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from iapas.data.folder import Folder
from iapas.demo import run_demo

pytestmark = pytest.mark.slow  # end to end: left out of the `-m "not slow"` loop, run in CI


def test_demo_writes_metrics_overlays_and_summary(tmp_path: Path) -> None:
    summary = run_demo(tmp_path / "demo", textures=("brick",), n_normal=5, n_test=5, size=96, report=False)
    out = tmp_path / "demo"
    # the generated data is a valid `folder` dataset (what `iapas evaluate --dataset folder` reads)
    split = Folder().load(out / "data" / "brick", "brick")
    assert len(split.normal_pool) == 5 and len(split.test) == 5
    assert sum(s.label for s in split.test) == 4  # 70 % of 5 rounded: 4 with defects, 1 clean
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["profile"] == "offline" and summary["profile"] == "offline"
    brick = metrics["categories"]["brick"]
    assert brick["n_images"] == 5 and brick["n_anomalous"] == 4
    assert brick["pixel_auroc"] > 0.8  # drawn defects are found, far above chance (0.5)
    assert len(list((out / "overlays" / "brick").glob("*.png"))) == 5
    text = (out / "summary.md").read_text()
    assert "profile: offline" in text and "| brick |" in text
