"""Issue 12, item 4: normal images overwritten under the same names (even with their old times) redo
Stage 1 and recompute every result; unchanged ones are still reused."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers

from cli_apps import command_app  # noqa: E402
from fake_profile import MeanDiffProfile, use_mean_diff  # noqa: E402
from iapas.cli import run as run_cmd  # noqa: E402
from iapas.config import PipelineConfig  # noqa: E402
from iapas.evaluation.cache import eval_digest  # noqa: E402



def write_normals(folder: Path, grey: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(3):
        p = folder / f"n{i}.png"
        Image.fromarray(np.full((24, 24, 3), grey + i, np.uint8)).save(p)
        os.utime(p, ns=(10**18, 10**18))  # the same times before and after the overwrite
        paths.append(p)
    return paths


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_item04_overwritten_normals_redo_stage1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_mean_diff(monkeypatch)
    app = command_app(run_cmd)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        Image.fromarray(np.full((24, 24, 3), 100 + 50 * i, np.uint8)).save(imgs / f"t{i}.png")
    write_normals(tmp_path / "normal", 20)
    args = ["run", "--normal", str(tmp_path / "normal"), "--images", str(imgs), "--out", str(tmp_path / "out"),
            "--profile", "offline"]

    def run() -> tuple[str, dict]:
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        return result.stderr, json.loads((tmp_path / "out" / "context.json").read_text())

    _, first = run()
    score0 = json.loads((tmp_path / "out" / "t0.json").read_text())["image_score"]
    MeanDiffProfile.predictions = 0
    err, again = run()  # nothing changed: Stage 1 and results are reused
    assert "reusing Stage 1" in err and MeanDiffProfile.predictions == 0

    write_normals(tmp_path / "normal", 200)  # new content, same names, same sizes and times
    err, third = run()
    assert "reusing Stage 1" not in err
    assert third["extension"]["mean_grey"] != first["extension"]["mean_grey"]
    assert MeanDiffProfile.predictions == 2  # every result recomputed from the new Stage 1
    assert json.loads((tmp_path / "out" / "t0.json").read_text())["image_score"] != score0


def test_item04_evaluation_cache_key_follows_normal_content(tmp_path: Path) -> None:
    from iapas.io.fingerprint import files_fingerprint

    paths = write_normals(tmp_path / "normal", 20)
    cfg = PipelineConfig(profile="offline")
    before = eval_digest(cfg, "offline", 256, normals=files_fingerprint(paths))
    assert eval_digest(cfg, "offline", 256, normals=files_fingerprint(paths)) == before
    write_normals(tmp_path / "normal", 200)  # same names, sizes and times; new content
    assert eval_digest(cfg, "offline", 256, normals=files_fingerprint(paths)) != before
