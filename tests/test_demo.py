"""`iapas demo` end to end: data in the folder layout, metrics, a `run` with verdicts and one report, and the
README's demo table equal to what a fresh demo run measures."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from iapas.data.folder import Folder
from iapas.demo import METRIC_KEYS, run_demo

pytestmark = pytest.mark.slow  # end to end: left out of the `-m "not slow"` loop, run in CI

README = Path(__file__).resolve().parents[1] / "README.md"
TOLERANCE_PP = 0.1  # percentage points: the README rounds to 0.1; threads are fixed, so runs agree to that


def test_demo_writes_metrics_a_run_with_verdicts_and_one_report(tmp_path: Path) -> None:
    summary = run_demo(tmp_path / "demo", textures=("brick",), n_normal=5, n_test=6, size=96)
    out = tmp_path / "demo"
    # the generated data is a valid `folder` dataset (what `iapas evaluate --dataset folder` reads)
    split = Folder().load(out / "data" / "brick", "brick")
    assert len(split.normal_pool) == 5 and len(split.test) == 6
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["profile"] == "offline" and summary["profile"] == "offline" and metrics["threads"] == 2
    brick = metrics["categories"]["brick"]
    assert brick["n_images"] == 6 and brick["n_anomalous"] == 4
    assert brick["pixel_auroc"] > 0.8  # drawn defects are found, far above chance (0.5)
    # the main job: `run` over the mixed test folder, verdicts in results.csv, one report
    run = summary["run"]
    rows = list(csv.DictReader(open(run["results"], encoding="utf-8")))
    assert len(rows) == 6 and {r["verdict"] for r in rows} <= {"defect", "ok"} and all(r["status"] == "ok" for r in rows)
    truth = json.loads((out / "data" / "brick" / "defects.json").read_text())
    agree = sum((truth[Path(r["path"]).name] != "good") == (r["verdict"] == "defect") for r in rows)
    assert run["agree_with_truth"] == agree >= 4
    reports = sorted(p.relative_to(out) for p in out.rglob("report.html"))
    assert reports == [Path("run/report.html")]  # one report, no evaluation report per texture
    page = (out / "run" / "report.html").read_text(encoding="utf-8")
    assert 'id="truth"' in page and 'id="evaluation"' in page and 'id="defects"' in page
    for r in rows:  # each part's run overlay beside its ground-truth overlay, both files that exist
        name = Path(r["path"]).stem
        assert f'src="{name}_overlay.png"' in page and f'src="../overlays/brick/{name}.png"' in page
        assert (out / "run" / f"{name}_overlay.png").is_file() and (out / "overlays" / "brick" / f"{name}.png").is_file()


def readme_demo_table() -> dict[str, dict[str, float]]:
    """The README's demo table (between the demo-figures markers): category -> metric -> value in %."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- demo-figures: begin -->(.*?)<!-- demo-figures: end -->", text, re.S)
    assert block, "README.md has no demo-figures block"
    table: dict[str, dict[str, float]] = {}
    for line in block.group(1).splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 1 + len(METRIC_KEYS) and re.fullmatch(r"[\d.]+", cells[1] or ""):
            table[cells[0]] = {k: float(v) for k, v in zip(METRIC_KEYS, cells[1:])}
    return table


def test_readme_demo_table_equals_a_fresh_demo_run(tmp_path: Path) -> None:
    expected = readme_demo_table()
    assert set(expected) == {"brick", "grass", "gravel", "mean"}
    summary = run_demo(tmp_path / "demo", run_category=None)  # the evaluation `iapas demo` prints
    measured = {**summary["categories"], "mean": summary["mean"]}
    for cat, values in expected.items():
        for key, value in values.items():
            got = 100 * float(measured[cat][key])
            assert abs(got - value) <= TOLERANCE_PP, f"README {cat} {key} {value} but the demo gives {got:.2f}"
