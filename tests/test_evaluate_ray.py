"""`iapas evaluate --engine ray` on a real local Ray instance (no network): the same metrics.json, the same
cache records and the same failures as the local engine, and a rerun reuses the cache.

The runner is the real offline profile (Ray actors are separate processes: a monkeypatched fake would not
exist there); iapas and the tests reach the actors through the session's PYTHONPATH, as in
test_engine_ray.py. The local reference runs with one torch thread, as each actor has one CPU.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_apps import command_app
from synthetic_layouts import make_mtd

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install '.[ray]')"),
]
TIMING = ("wall_seconds", "images_per_second")  # the only fields of metrics.json that depend on the clock
EXIT_SOME_FAILED = 3


@pytest.fixture(scope="module")
def mtd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MTD with one unreadable image and one anomalous image whose mask is missing."""
    root = tmp_path_factory.mktemp("mtd")
    make_mtd(root)
    (root / "MT_Crack" / "Imgs" / "exp1_num_0.jpg").write_bytes(b"not a jpeg at all")
    (root / "MT_Blowhole" / "Imgs" / "exp1_num_1.png").unlink()
    return root


def _evaluate(root: Path, out: Path, *extra: str) -> int:
    from iapas.cli import evaluate

    args = ["evaluate", "--dataset", "mtd", "--root", str(root), "--out", str(out), "--profile", "offline",
            "--num-normal", "4", "--eval-size", "32", "--seeds", "111,112", *extra]
    res = CliRunner().invoke(command_app(evaluate), args, catch_exceptions=False)
    return res.exit_code


def _metrics(out: Path) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in m.items() if k not in TIMING}


def _records(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in (out / "cache").rglob("*") if p.is_file())


def test_evaluate_on_ray_gives_the_local_metrics_records_and_failures(ray_session, mtd: Path, tmp_path: Path) -> None:
    # one thread, as each Ray actor; two images fail, the rest is evaluated
    assert _evaluate(mtd, tmp_path / "local", "--threads", "1") == EXIT_SOME_FAILED
    out = tmp_path / "ray"
    assert _evaluate(mtd, out, "--engine", "ray", "--ray-actors", "2", "--threads", "1") == EXIT_SOME_FAILED

    local, ray_m = _metrics(tmp_path / "local"), _metrics(out)
    assert ray_m == local
    assert ray_m["n_predicted"] == 2 * 14 and ray_m["n_cached"] == 0 and ray_m["categories"]["mtd"]["n_images"] == 14
    assert len(ray_m["failures"]) == 4  # per seed: the unreadable image, and the missing mask named by its own path
    assert any(f["path"].endswith("exp1_num_1.png") for f in ray_m["failures"])
    assert _records(out) == _records(tmp_path / "local") and len(_records(out)) == 2 * 14

    stamps = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*") if p.is_file()}
    assert _evaluate(mtd, out, "--engine", "ray", "--threads", "1") == EXIT_SOME_FAILED  # rerun: every record is reused
    again = _metrics(out)
    assert again["n_cached"] == 2 * 14 and again["n_predicted"] == 0 and again["categories"] == local["categories"]
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*") if p.is_file()} == stamps
