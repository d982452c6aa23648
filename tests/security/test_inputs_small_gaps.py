"""Issue 12 item 13 (inputs part): --out equal to --images says what is wrong; `..jpg` is reported."""
from __future__ import annotations

from pathlib import Path

import pytest
import typer

from cli_apps import command_app
from fake_profile import MeanDiffProfile, use_mean_diff
from inputs_support import invoke, normals, photo, summary
from iapas.cli import run as run_cmd


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(run_cmd)


def test_out_equal_to_images_says_it_is_the_output_folder(app: typer.Typer, tmp_path: Path) -> None:
    normals(tmp_path / "good", 3)
    lot = tmp_path / "lot"
    photo(lot / "a.png")
    code, output = invoke(app, "run", "--normal", tmp_path / "good", "--images", lot, "--out", lot, "-r", "3")
    text = " ".join(output.split())
    assert code == 2, output
    assert "is the output folder --out" in text and "no images given" not in text, text
    assert MeanDiffProfile.instances == 0 and not (lot / "context.json").exists()  # refused before Stage 1


def test_dot_dot_jpg_is_reported_not_skipped_silently(app: typer.Typer, tmp_path: Path) -> None:
    normals(tmp_path / "good", 3)
    lot = tmp_path / "lot"
    photo(lot / "a.png")
    photo(lot / "dots.jpg", seed=2).rename(lot / "..jpg")
    out = tmp_path / "out"
    code, output = invoke(app, "run", "--normal", tmp_path / "good", "--images", lot, "--out", out, "-r", "3")
    assert code == 0, output
    text = " ".join(output.split())
    assert "skipped 1 hidden file" in text and "..jpg" in text, text
    assert [i["path"] for i in summary(out)["inputs"]] == [str(lot / "a.png")]
