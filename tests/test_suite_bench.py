"""bench/suite.py runs in CI on the synthetic set only: both protocols through the real harness,
one row per dataset plus the mean, and suite.json/suite.md under --out."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: left out of the `-m "not slow"` loop, run in CI

ROOT = Path(__file__).resolve().parents[1]


def test_suite_runs_on_the_synthetic_set_only(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src"),
           "IAPAS_DATASETS": str(tmp_path / "no-datasets-here")}
    cmd = [sys.executable, str(ROOT / "bench" / "suite.py"), "--synthetic-only", "--limit", "4",
           "--out", str(tmp_path / "suite"), "--set", "feature_size=128", "--set", "threads=1"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    for protocol in ("standard", "paper"):
        assert f"### {protocol} protocol" in res.stdout
    rows = [line for line in res.stdout.splitlines() if line.startswith("| synthetic |")]
    # per protocol: the threshold-free table and the operating-point table
    assert len(rows) == 4 and "| mtd |" not in res.stdout and "| bottle |" not in res.stdout
    assert "at the operating point" in res.stdout and "Threshold rule" in res.stdout
    data = json.loads((tmp_path / "suite" / "suite.json").read_text())
    assert data["mode"] == "few-shot" and data["overrides"] == {"feature_size": 128, "threads": 1}
    for protocol, table in data["results"].items():
        syn = table["synthetic"]
        assert syn["n_images"] == 12  # 4 per texture, 3 textures
        assert 0.0 <= syn["pixel_ap"] <= 1.0 and syn["pixel_auroc"] > 0.7, (protocol, syn)
        assert table["mean"]["pixel_ap"] == syn["pixel_ap"]
        assert syn["images_per_second"] > 0
        assert 0.0 <= syn["good_flagged"] <= 1.0 and 0.0 <= syn["image_f1"] <= syn["image_f1_max"] + 1e-9
        assert syn["kinds"] and set(syn["kinds"].values()) == {"texture"}
    assert (tmp_path / "suite" / "suite.md").read_text().startswith("## offline profile suite")
