"""bench/compare_metrics.py: the check that a refactor leaves every figure identical."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "compare_metrics.py"


def _run(tmp_path: Path, before: dict, after: dict, *extra: str) -> subprocess.CompletedProcess[str]:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(before), encoding="utf-8")
    b.write_text(json.dumps(after), encoding="utf-8")
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b), *extra], capture_output=True, text=True)


def test_identical_figures_pass_and_timing_is_ignored(tmp_path: Path) -> None:
    before = {"rows": [{"name": "mtd", "pixel_ap": 24.65, "images_per_second": 9.0}]}
    after = {"rows": [{"name": "mtd", "pixel_ap": 24.65, "images_per_second": 3.1}]}
    done = _run(tmp_path, before, after)
    assert done.returncode == 0, done.stdout
    assert "0 difference(s)" in done.stdout


def test_a_changed_or_missing_figure_fails_and_is_named(tmp_path: Path) -> None:
    before = {"rows": [{"name": "mtd", "pixel_ap": 24.65, "pixel_auroc": 73.3}]}
    after = {"rows": [{"name": "mtd", "pixel_ap": 24.66}]}
    done = _run(tmp_path, before, after)
    assert done.returncode == 1
    assert "rows.0.pixel_ap: 24.65 -> 24.66" in done.stdout
    assert "rows.0.pixel_auroc: only in before" in done.stdout
    assert _run(tmp_path, before, {"rows": [{"name": "mtd", "pixel_ap": 24.66, "pixel_auroc": 73.3}]},
                "--tolerance", "0.02").returncode == 0
