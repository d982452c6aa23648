"""The shared per-image / whole-run functions of run, segment and the Ray engine: verdict fields, exit
status, results.csv, reused items, plain progress lines, and the CLI flags that drive them."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from iapas.config import build_config
from iapas.context import Context
from iapas.errors import SettingsError
from iapas.io.progress import PlainProgress
from iapas.outputs.run_items import (
    EXIT_DEFECT_FOUND,
    cached_item,
    exit_code,
    largest_region_area,
    results_csv,
    verdict_fields,
)
from iapas.outputs.writer import RunSummary, write_prediction
from iapas.types import Box, Prediction


def _ctx() -> Context:
    return Context(profile="offline", config=build_config(profile="offline"))


def _pred(score: float, mask: np.ndarray | None = None, boxes: list[Box] | None = None) -> Prediction:
    m = np.zeros((20, 30), bool) if mask is None else mask
    return Prediction(path="a.png", score_map=np.full(m.shape, score, np.float32), mask=m, boxes=boxes or [],
                      image_score=score, profile="offline")


def test_largest_region_counts_the_biggest_connected_blob() -> None:
    m = np.zeros((20, 30), bool)
    m[1:4, 1:4] = True  # 9
    m[10:15, 10:14] = True  # 20
    m[15, 14] = True  # touches diagonally: 8-connected -> 21
    assert largest_region_area(m) == 21 and largest_region_area(np.zeros((3, 3), bool)) == 0


def test_verdict_fields_name_the_top_phrase() -> None:
    m = np.zeros((20, 30), bool)
    m[2:6, 2:6] = True
    pred = _pred(0.7, m, [Box((0, 0, 5, 5), "crack", 0.4), Box((0, 0, 9, 9), "blowhole", 0.8)])
    f = verdict_fields(pred, _ctx())
    assert f == {"verdict": "defect", "image_score": 0.7, "threshold": 0.5, "largest_region_area": 16, "top_phrase": "blowhole"}
    assert verdict_fields(_pred(0.3), _ctx())["verdict"] == "ok"


def _summary(tmp_path: Path, statuses: list[tuple[str, str | None]]) -> RunSummary:
    s = RunSummary(out_dir=tmp_path, profile="offline", settings_digest="d", threshold=0.5)
    for i, (status, verdict) in enumerate(statuses):
        extra = {"verdict": verdict, "image_score": 0.7 if verdict == "defect" else 0.2, "largest_region_area": 5,
                 "top_phrase": "anomaly"} if status == "ok" else {}
        s.record(Path(f"in/{i}.png"), f"{i}", status, error="corrupt" if status == "failed" else None, **extra)
    return s


@pytest.mark.parametrize("statuses, flag, code", [
    ([("ok", "ok"), ("ok", "ok")], True, 0),
    ([("ok", "defect"), ("ok", "ok")], False, 0),  # verdicts do not change the status without the flag
    ([("ok", "defect"), ("ok", "ok")], True, EXIT_DEFECT_FOUND),
    ([("ok", "defect"), ("failed", None)], True, 3),  # processing problems come first
    ([("failed", None)], True, 4),
])
def test_exit_status_is_about_processing_unless_asked(tmp_path: Path, statuses, flag: bool, code: int) -> None:  # type: ignore[no-untyped-def]
    assert exit_code(_summary(tmp_path, statuses), fail_on_defect=flag) == code


def test_results_csv_has_a_row_per_input_and_blank_verdicts_for_failures(tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(results_csv(_summary(tmp_path, [("ok", "defect"), ("failed", None), ("ok", "ok")])))))
    assert [r["verdict"] for r in rows] == ["defect", "", "ok"]
    assert rows[1]["status"] == "failed" and rows[1]["error"] == "corrupt" and rows[1]["image_score"] == ""
    assert rows[0]["image_score"] == "0.700000" and rows[0]["path"] == "in/0.png"


def test_summary_json_carries_threshold_and_verdict_counts(tmp_path: Path) -> None:
    data = json.loads(_summary(tmp_path, [("ok", "defect"), ("ok", "ok"), ("failed", None)]).save().read_text())
    assert data["threshold"] == 0.5 and data["verdict_counts"] == {"defect": 1, "ok": 1}


def test_cached_item_recomputes_a_verdict_missing_from_older_outputs(tmp_path: Path) -> None:
    m = np.zeros((20, 30), bool)
    m[3:7, 3:8] = True
    write_prediction(tmp_path, "old", np.zeros((20, 30, 3), np.uint8), _pred(0.61, m, [Box((3, 3, 8, 7), "anomaly", 0.61)]), "d")
    item = cached_item(tmp_path, "old", _ctx())  # written without verdict fields, as before issue 14
    assert item["verdict"] == "defect" and item["largest_region_area"] == 20 and item["top_phrase"] == "anomaly"
    assert cached_item(tmp_path, "missing", _ctx()) == {}


def test_plain_progress_prints_at_most_every_few_seconds_and_at_the_end() -> None:
    now = [0.0]
    buf = io.StringIO()
    p = PlainProgress("offline profile", 10, every=5.0, stream=buf, clock=lambda: now[0])
    printed = []
    for i in range(1, 11):
        now[0] += 1.5
        printed.append(p.update(i, extra="; 0 defect"))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3 and [x is not None for x in printed].count(True) == 3
    assert lines[0] == "offline profile: 4/10 images (40%), 0.67 images/s, about 9 s left; 0 defect"
    assert lines[-1].startswith("offline profile: 10/10 images (100%), 0.67 images/s;")


def test_export_flag_is_checked_before_any_model_loads() -> None:
    from iapas.cli.options import parse_export

    assert parse_export(None) == () and parse_export("coco") == ("coco",) and parse_export("COCO,coco") == ("coco",)
    with pytest.raises(SettingsError, match="allowed: coco"):
        parse_export("yolo")


@pytest.mark.parametrize("command", ["run", "segment", "evaluate"])
def test_help_shows_no_bool_type_and_documents_exit_5(command: str) -> None:
    from typer.testing import CliRunner

    from iapas.cli.app import _register_all, app

    _register_all()
    out = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "160"}).output
    assert "<bool>" not in out and re.search(r"--help\s+Show this message", out)
    if command != "evaluate":
        assert "--fail-on-defect" in out and "5 with --fail-on-defect" in " ".join(out.split())
