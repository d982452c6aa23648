"""Inputs that do not exist are refused before any model loads: exit 2 at once, no output folder."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli_apps import command_app
from corpus import pattern, write_normals
from iapas.cli import run as run_cmd


@pytest.fixture()
def app() -> typer.Typer:
    return command_app(run_cmd)


def _invoke(app: typer.Typer, *args: str | Path) -> tuple[int, str, float]:
    start = time.perf_counter()
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, " ".join(result.stderr.split()), time.perf_counter() - start


def test_missing_images_folder_exits_2_at_once_without_an_output_folder(app: typer.Typer, tmp_path: Path) -> None:
    write_normals(tmp_path / "normal")
    out = tmp_path / "out"
    code, err, seconds = _invoke(app, "run", "--normal", tmp_path / "normal", "--images", tmp_path / "missing",
                                 "--out", out, "--profile", "offline")
    assert code == 2 and "--images" in err and "missing does not exist" in err, err
    assert seconds < 2.0 and not out.exists()


def test_missing_normal_folder_exits_2_at_once_without_an_output_folder(app: typer.Typer, tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.fromarray(pattern(32, 40)).save(tmp_path / "imgs" / "a.png")
    out = tmp_path / "out"
    code, err, seconds = _invoke(app, "run", "--normal", tmp_path / "nope", "--images", tmp_path / "imgs",
                                 "--out", out, "--profile", "offline")
    assert code == 2 and "--normal" in err and "does not exist" in err, err
    assert seconds < 2.0 and not out.exists()


def test_zero_shot_with_only_missing_images_is_refused_too(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, err, _ = _invoke(app, "run", "--images", tmp_path / "a.png", tmp_path / "b.png", "--out", out)
    assert code == 2 and "a.png does not exist" in err and "b.png does not exist" in err and not out.exists()
