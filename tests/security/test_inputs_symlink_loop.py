"""Issue 12 item 3 (and 13, evaluate): symlink loops and FIFOs are reported per entry, never a traceback
and never dropped without a note."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer

from cli_apps import command_app
from fake_profile import use_mean_diff
from inputs_support import invoke, normals, photo, summary
from iapas.cli import evaluate as evaluate_cmd
from iapas.cli import run as run_cmd
from synthetic_layouts import make_mvtec_like


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(run_cmd, evaluate_cmd)


def _loop(path: Path) -> Path:
    os.symlink(path.name, path)  # points at itself: ELOOP on any access
    return path


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
@pytest.mark.parametrize("command", ["run", "segment"])
def test_symlink_loop_in_images_fails_as_one_entry(app: typer.Typer, tmp_path: Path, command: str) -> None:
    normals(tmp_path / "good", 3)
    lot = tmp_path / "lot"
    photo(lot / "a.png", seed=3)
    loop = _loop(lot / "loop.png")
    ring_a, ring_b = lot / "ring_a.jpg", lot / "ring_b.jpg"
    os.symlink(ring_b.name, ring_a)
    os.symlink(ring_a.name, ring_b)
    out = tmp_path / "out"
    if command == "run":
        code, output = invoke(app, "run", "--normal", tmp_path / "good", "--images", lot, "--out", out, "-r", "3")
    else:
        code, output = invoke(app, "prompts", "--normal", tmp_path / "good", "--out", tmp_path / "ctx.json", "-r", "3")
        assert code == 0, output
        code, output = invoke(app, "segment", "--context", tmp_path / "ctx.json", "--images", lot, "--out", out)
    assert code == 3, output  # some failed, the rest processed
    items = {i["path"]: i for i in summary(out)["inputs"]}
    assert items[str(lot / "a.png")]["status"] == "ok"
    for bad in (loop, ring_a, ring_b):
        assert items[str(bad)]["status"] == "failed"
        assert "symbolic link" in items[str(bad)]["error"], items[str(bad)]
        assert bad.name in output


def test_evaluate_reports_fifos_and_symlink_loops(app: typer.Typer, tmp_path: Path) -> None:
    root = tmp_path / "mv"
    make_mvtec_like(root)
    fifo = root / "bottle" / "test" / "broken" / "fifo.png"
    os.mkfifo(fifo)
    loop = _loop(root / "bottle" / "test" / "good" / "loop.png")
    out = tmp_path / "eval"
    code, output = invoke(app, "evaluate", "--dataset", "mvtec", "--root", root, "--out", out,
                          "--categories", "bottle", "--num-normal", "3", "--eval-size", "16")
    assert code == 3, output  # some images failed, the rest evaluated
    failures = {f["image"]: f["error"] for f in json.loads((out / "metrics.json").read_text())["failures"]}
    assert "pipe" in failures[str(fifo)], failures
    assert "symbolic link" in failures[str(loop)], failures
