"""`--maps npz16|npy|none`: what `run` writes per image, what reads it back, and what a rerun reuses."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from cli_apps import command_app
from corpus import pattern, write_normals
from fake_profile import MeanDiffProfile, use_mean_diff
from iapas.cli import run as run_cmd
from iapas.io.scoremaps import load_score_map
from iapas.outputs.sources import load_run_results


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(run_cmd)


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    write_normals(tmp_path / "normal")
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        img = pattern(48, 64, seed=10 + i)
        img[10:20, 10:30] = 255 * (i % 2)
        Image.fromarray(img).save(tmp_path / "imgs" / f"part_{i}.png")
    return tmp_path


def _run(app: typer.Typer, data: Path, out: Path, *extra: str) -> int:
    result = CliRunner().invoke(app, ["run", "--normal", str(data / "normal"), "--images", str(data / "imgs"),
                                      "--out", str(out), *extra], catch_exceptions=False)
    return result.exit_code


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_default_is_compressed_float16_that_reads_back_within_its_precision(app: typer.Typer, data: Path) -> None:
    out = data / "out"
    assert _run(app, data, out, "--maps", "npy") == 0
    assert _run(app, data, out / "light") == 0
    for i in range(3):
        exact = np.load(out / f"part_{i}.npy")
        light = out / "light" / f"part_{i}.npz"
        assert light.is_file() and not (out / "light" / f"part_{i}.npy").exists()
        meta = json.loads((out / "light" / f"part_{i}.json").read_text())
        assert meta["files"]["score_map"] == f"part_{i}.npz"
        back = load_score_map(light)
        assert back.dtype == np.float32 and back.shape == exact.shape
        assert np.abs(back - exact).max() <= 1e-3  # float16: 3 significant digits in [0, 1]
    results = load_run_results(out / "light")  # `iapas compare` reads them
    assert sorted(Path(r.path).name for r in results) == [f"part_{i}.png" for i in range(3)]


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_none_writes_no_map_and_a_rerun_reuses_the_images(app: typer.Typer, data: Path) -> None:
    out = data / "out"
    assert _run(app, data, out, "--maps", "none") == 0
    assert not list(out.glob("*.np[yz]"))
    assert all((out / f"part_{i}_mask.png").is_file() and (out / f"part_{i}_overlay.png").is_file() for i in range(3))
    done = MeanDiffProfile.predictions
    assert _run(app, data, out, "--maps", "none") == 0
    assert MeanDiffProfile.predictions == done  # nothing predicted again
    assert _run(app, data, out) == 0  # another format: the maps are written now
    assert MeanDiffProfile.predictions == done + 3 and len(list(out.glob("*.npz"))) == 3


def test_unknown_format_is_refused_before_anything_runs(app: typer.Typer, data: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--normal", str(data / "normal"), "--images", str(data / "imgs"),
                                      "--out", str(data / "out"), "--maps", "tiff"])
    assert result.exit_code == 2 and "--maps" in result.stderr and not (data / "out").exists()
