"""Issue 12 item 2: a run never reads its own outputs (normal, images, evaluate's dataset readers)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from cli_apps import command_app
from fake_profile import use_mean_diff
from inputs_support import context, invoke, normals, photo, summary
from iapas.cli import evaluate as evaluate_cmd
from iapas.cli import run as run_cmd
from synthetic_layouts import make_folder


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(run_cmd, evaluate_cmd)


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_out_inside_normal_rerun_keeps_the_same_normal_images(app: typer.Typer, tmp_path: Path) -> None:
    good = tmp_path / "good"
    written = normals(good, 4)
    check = [photo(tmp_path / "check" / f"c{i}.png", seed=10 + i) for i in range(3)]
    out = good / "results"  # --out inside --normal
    for attempt in range(2):
        code, output = invoke(app, "run", "--normal", good, "--images", tmp_path / "check", "--out", out)
        assert code == 0, output
        used = context(out / "context.json")["normal_images"]
        assert sorted(used) == sorted(str(p) for p in written), (attempt, used)
    assert any(out.glob("*_mask.png")) and any(out.glob("*_overlay.png"))  # the outputs really are there
    assert "left out the output folder" in output
    assert len(summary(out)["inputs"]) == len(check)


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_out_inside_images_is_not_scored_on_rerun(app: typer.Typer, tmp_path: Path) -> None:
    normals(tmp_path / "good", 3)
    lot = tmp_path / "lot"
    photo(lot / "a.png", seed=5)
    out = lot / "out"
    for _ in range(2):
        code, output = invoke(app, "run", "--normal", tmp_path / "good", "--images", lot, "--out", out, "-r", "3")
        assert code == 0, output
    assert [i["path"] for i in summary(out)["inputs"]] == [str(lot / "a.png")]


def test_evaluate_out_inside_test_folder_does_not_score_its_report_images(app: typer.Typer, tmp_path: Path) -> None:
    root = tmp_path / "line"
    expected = make_folder(root)[root.name]["test"]
    out = root / "test" / "eval"  # --out inside the dataset's test/ folder
    for attempt in range(2):
        code, output = invoke(app, "evaluate", "--dataset", "folder", "--root", root, "--out", out,
                              "--num-normal", "3", "--eval-size", "16")
        assert code == 0, output
        for i in range(3):  # what --report would add: images inside --out
            photo(out / "report" / f"panel_{i}.png", seed=20 + i)
        (out / f"metrics_{attempt}.png").write_bytes((out / "report" / "panel_0.png").read_bytes())
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["categories"][root.name]["n_images"] == expected, (attempt, metrics["categories"])
