"""Outputs stay under the real --out even when a folder inside --out is a symbolic link leading elsewhere."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from files_support import images, invoke, run_app


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_symlinked_output_subfolder_writes_nothing_outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = tmp_path / "in"
    images(inputs / "lotA", 1, 120, names=["part1.png"])
    images(inputs / "lotB", 1, 140, names=["part2.png"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "lotA").symlink_to(elsewhere, target_is_directory=True)
    code, err = invoke(run_app(monkeypatch), "run", "--normal", images(tmp_path / "n", 3), "--images", inputs,
                       "--out", out, "--profile", "offline")
    assert code == 3, err  # lotA's image failed, lotB's went through
    assert list(elsewhere.iterdir()) == []
    assert (out / "lotB" / "part2.json").is_file()
    failed = {Path(i["path"]).name: i for i in json.loads((out / "summary.json").read_text())["inputs"]}
    assert failed["part1.png"]["status"] == "failed"
    assert "symbolic link" in failed["part1.png"]["error"] and str(elsewhere) in failed["part1.png"]["error"]


def test_symlinked_report_folder_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "report_assets").symlink_to(elsewhere, target_is_directory=True)
    code, err = invoke(run_app(monkeypatch), "run", "--normal", images(tmp_path / "n", 3), "--images",
                       images(tmp_path / "i", 2, 120), "--out", out, "--profile", "offline")
    assert code == 2 and "report_assets" in err and "symbolic link" in err
    assert list(elsewhere.iterdir()) == []


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_link_inside_out_pointing_inside_out_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = tmp_path / "in"
    images(inputs / "lotA", 1, 120, names=["part1.png"])
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "lotA").symlink_to(out / "real", target_is_directory=True)
    code, err = invoke(run_app(monkeypatch), "run", "--normal", images(tmp_path / "n", 3), "--images", inputs,
                       "--out", out, "--profile", "offline")
    assert code == 0, err
    assert (out / "real" / "part1.json").is_file()
