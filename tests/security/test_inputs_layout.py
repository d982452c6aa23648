"""Issue 12 item 9 (and 13): `evaluate` on the wrong layout fails saying which layout it expected, and a
bad --root never creates --out."""
from __future__ import annotations

from pathlib import Path

import pytest
import typer

from cli_apps import command_app
from fake_profile import use_mean_diff
from inputs_support import invoke
from iapas.cli import evaluate as evaluate_cmd
from synthetic_layouts import make_mtd, make_mvtec_like


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(evaluate_cmd)


def _one_line(output: str) -> str:
    return " ".join(output.split())  # rich wraps long messages


def test_mvtec_on_an_mtd_root_names_the_mvtec_layout(app: typer.Typer, tmp_path: Path) -> None:
    root = tmp_path / "mtd"
    make_mtd(root)
    out = tmp_path / "eval"
    code, output = invoke(app, "evaluate", "--dataset", "mvtec", "--root", root, "--out", out, "--eval-size", "16")
    text = _one_line(output)
    assert code == 2, output
    assert "no category found" in text and "CATEGORY/train/good" in text and "ground_truth" in text, text
    assert not out.exists()  # refused before --out is created


def test_category_with_an_empty_test_folder_is_refused_not_scored_as_zero_images(app: typer.Typer, tmp_path: Path) -> None:
    root = tmp_path / "mv"
    make_mvtec_like(root)
    for d in (root / "carpet" / "test").iterdir():  # keep the folders, remove every test image
        for f in d.iterdir():
            f.unlink()
    code, output = invoke(app, "evaluate", "--dataset", "mvtec", "--root", root, "--out", tmp_path / "e",
                          "--categories", "carpet", "--num-normal", "3", "--eval-size", "16")
    assert code in (2, 4), output
    assert "no test images" in _one_line(output) and "CATEGORY/test" in _one_line(output), output


def test_nonexistent_root_does_not_create_out(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    code, output = invoke(app, "evaluate", "--dataset", "mtd", "--root", tmp_path / "nope", "--out", out)
    assert code == 2, output
    assert "does not exist" in _one_line(output)
    assert not out.exists()
