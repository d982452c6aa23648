"""Issue 14 (inputs): --include/--exclude, a warning for fewer normal images than r, and an empty
--images folder refused before Stage 1."""
from __future__ import annotations

from pathlib import Path

import pytest
import typer

from cli_apps import command_app
from fake_profile import MeanDiffProfile, use_mean_diff
from inputs_support import context, invoke, normals, photo, summary
from iapas.cli import run as run_cmd


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(run_cmd)


def _lot(folder: Path) -> None:
    photo(folder / "a1.jpg", seed=1)
    photo(folder / "a2.png", seed=2)
    photo(folder / "lotB" / "b1.jpg", seed=3)
    photo(folder / "lotB" / "b2.png", seed=4)


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_include_and_exclude_on_run_and_segment(app: typer.Typer, tmp_path: Path) -> None:
    normals(tmp_path / "good", 4)
    photo(tmp_path / "good" / "reject.jpg", seed=9)
    lot = tmp_path / "lot"
    _lot(lot)
    out = tmp_path / "out"
    code, output = invoke(app, "run", "--normal", tmp_path / "good", "--images", lot, "--out", out,
                          "--include", "*.png", "--exclude", "lotB/*")
    assert code == 0, output
    assert [i["path"] for i in summary(out)["inputs"]] == [str(lot / "a2.png")]
    assert all(p.endswith(".png") for p in context(out / "context.json")["normal_images"])  # reject.jpg left out
    assert "--include/--exclude left out" in output
    code, output = invoke(app, "segment", "--context", out / "context.json", "--images", lot, "--out", tmp_path / "o2",
                          "--exclude", "*.PNG")  # case-insensitive
    assert code == 0, output
    assert sorted(i["path"] for i in summary(tmp_path / "o2")["inputs"]) == [str(lot / "a1.jpg"), str(lot / "lotB" / "b1.jpg")]


def test_prompts_include(app: typer.Typer, tmp_path: Path) -> None:
    good = tmp_path / "good"
    _lot(good)
    code, output = invoke(app, "prompts", "--normal", good, "--out", tmp_path / "c.json", "--include", "lotB/*")
    assert code == 0, output
    assert sorted(Path(p).name for p in context(tmp_path / "c.json")["normal_images"]) == ["b1.jpg", "b2.png"]


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_fewer_normal_images_than_r_warns(app: typer.Typer, tmp_path: Path) -> None:
    normals(tmp_path / "good", 3)
    photo(tmp_path / "lot" / "a.png")
    code, output = invoke(app, "run", "--normal", tmp_path / "good", "--images", tmp_path / "lot", "--out", tmp_path / "o")
    assert code == 0, output
    assert "holds 3 usable images, fewer than r = 10" in " ".join(output.split()), output
    code, output = invoke(app, "run", "--normal", tmp_path / "good", "--images", tmp_path / "lot", "--out", tmp_path / "o",
                          "-r", "3")
    assert "fewer than r" not in output


def test_empty_images_folder_is_refused_before_stage_1(app: typer.Typer, tmp_path: Path) -> None:
    normals(tmp_path / "good", 3)
    empty = tmp_path / "EMPTY"
    empty.mkdir()
    out = tmp_path / "out"
    code, output = invoke(app, "run", "--normal", tmp_path / "good", "--images", empty, "--out", out, "-r", "3")
    assert code == 2, output
    assert "--images" in output and "holds no images" in " ".join(output.split()), output
    assert MeanDiffProfile.instances == 0  # no profile built: Stage 1 never ran
    assert not (out / "context.json").exists()
