"""`iapas compare`: panels over run and evaluation folders matched by source image path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer

from PIL import Image
from typer.testing import CliRunner

from cli_apps import command_app
from _report_data import make_dataset, make_eval_folder, make_run_folder
from iapas.cli import compare as compare_cli
from iapas.errors import EXIT_BAD_SETTINGS, EXIT_NOTHING_DONE, SettingsError
from iapas.outputs.compare import NothingToCompare, choose_images, write_comparison, _load
from iapas.outputs.sources import load_results


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    items = make_dataset(root / "data", categories=("tile",), n_good=2, n_bad=4)
    other = make_dataset(root / "other", categories=("plate",), n_good=1, n_bad=1, seed=5)
    return {
        "a": make_run_folder(root / "run_a", items, "offline", 1.0),
        "b": make_run_folder(root / "run_b", items, "fused", 0.5),
        "ev": make_eval_folder(root / "eval", items, "paper", 0.7),
        "other": make_run_folder(root / "run_other", other, "offline", 1.0),
    }


def _app() -> typer.Typer:
    return command_app(compare_cli)


def test_two_run_folders(folders: dict[str, Path], tmp_path: Path) -> None:
    page = write_comparison([folders["a"], folders["b"]], tmp_path, max_images=3)
    html = page.read_text()
    assert "run_a (offline)" in html and "run_b (fused)" in html
    assert "6 source images appear in all 2 folders" in html
    with Image.open(tmp_path / "compare_panel_01.png") as im:
        assert im.width == 2 * 10 + 4 * 200 + 3 * 4  # image | gt | two score maps
    # without ground truth the rows are the images whose scores differ most between the runs
    runs = _load([folders["a"], folders["b"]])
    keys = list(runs[0].by_key)
    spread = sorted(keys, key=lambda k: -abs(runs[0].by_key[k].image_score - runs[1].by_key[k].image_score))
    assert choose_images(runs, keys, 3) == spread[:3]
    shown = [Path(runs[0].by_key[k].path).name for k in spread[:3]]
    assert all(name in html for name in shown)


def test_run_and_evaluation_folders_mix_and_bring_ground_truth(folders: dict[str, Path], tmp_path: Path) -> None:
    page = write_comparison([folders["a"], folders["ev"], folders["b"]], tmp_path, max_images=20)
    html = page.read_text()
    assert "evaluation" in html and "protocol: standard" in html  # the evaluation folder's metrics table
    with Image.open(tmp_path / "compare_panel_01.png") as im:
        arr = np.asarray(im.convert("RGB"))
        assert im.width == 2 * 10 + 5 * 200 + 4 * 4
    gt_col = arr[:, 10 + 204: 10 + 404]
    assert (gt_col == 255).all(axis=-1).sum() > 50  # white defect pixels in the ground-truth column
    assert "no ground truth" not in html


def test_many_images_split_over_panels(folders: dict[str, Path], tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("iapas.outputs.compare.ROWS_PER_PANEL", 4)
    write_comparison([folders["a"], folders["b"]], tmp_path, max_images=6)
    assert sorted(p.name for p in tmp_path.glob("compare_panel_*.png")) == ["compare_panel_01.png", "compare_panel_02.png"]


def test_no_common_image(folders: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(NothingToCompare, match="no source image appears in every folder"):
        write_comparison([folders["a"], folders["other"]], tmp_path)


def test_rejects_non_result_folders(folders: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SettingsError, match="holds no results"):
        load_results(tmp_path / "empty")
    with pytest.raises(SettingsError, match="does not exist"):
        load_results(tmp_path / "missing")
    with pytest.raises(SettingsError, match="two or more"):
        write_comparison([folders["a"]], tmp_path)


def test_matching_uses_the_resolved_source_path(folders: dict[str, Path], tmp_path: Path) -> None:
    moved = tmp_path / "run_rel"
    moved.mkdir()
    for p in folders["b"].glob("*"):
        if p.suffix == ".json" and p.name != "summary.json":
            meta = json.loads(p.read_text())
            src = Path(meta["path"])
            meta["path"] = f"{src.parent}/../{src.parent.name}/{src.name}"  # same file, other spelling
            (moved / p.name).write_text(json.dumps(meta))
        else:
            (moved / p.name).write_bytes(p.read_bytes())
    page = write_comparison([folders["a"], moved], tmp_path / "out")
    assert "6 source images appear in all 2 folders" in page.read_text()


def test_cli_exit_codes(folders: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    ok = runner.invoke(app, ["compare", str(folders["a"]), str(folders["b"]), "--out", str(tmp_path / "c"),
                             "--images", "2"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "c" / "compare.html").is_file()
    one = runner.invoke(app, ["compare", str(folders["a"]), "--out", str(tmp_path / "d")])
    assert one.exit_code == EXIT_BAD_SETTINGS
    none = runner.invoke(app, ["compare", str(folders["a"]), str(folders["other"]), "--out", str(tmp_path / "e")])
    assert none.exit_code == EXIT_NOTHING_DONE
    bad = runner.invoke(app, ["compare", str(folders["a"]), str(tmp_path / "nope"), "--out", str(tmp_path / "f")])
    assert bad.exit_code == EXIT_BAD_SETTINGS
