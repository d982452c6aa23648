"""Kill-and-resume on real subprocesses: a killed `run` / `evaluate` rerun with the same command completes
the job, reuses finished per-image results, and leaves no half-written file; Ctrl-C exits 130 cleanly.

The `offline` variants use the real offline profile; the `fake` variants use tests/fake_cli.py (the real
CLI with a tiny profile slowed down per image), so the interruption logic is covered on any machine.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iapas.io.scoremaps import load_score_map

from corpus import pattern, write_normals

pytestmark = pytest.mark.slow  # real subprocesses killed midway

TESTS = Path(__file__).parent
N_IMAGES = {"fake": 30, "offline": 10}  # the real profile is slower per image; fewer keep the test quick


def _cli(kind: str) -> list[str]:
    if kind == "offline":
        return [sys.executable, "-m", "iapas.cli.app"]
    return [sys.executable, str(TESTS / "fake_cli.py")]


def _env(delay: float) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "FAKE_PROFILE_DELAY": str(delay), "PYTHONUNBUFFERED": "1"}


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = pattern(64, 80, seed=100 + i)
        if i % 3 == 0:
            img[20:30, 30:45] = 255  # a bright "defect"
        Image.fromarray(img).save(folder / f"part_{i:03d}.png")


def _summary(out: Path) -> dict | None:
    try:
        return json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 240.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended (status {proc.returncode}) before it could be interrupted:\n{err[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("timed out waiting for progress")


def _n_ok(out: Path) -> int:
    s = _summary(out)
    return 0 if s is None else sum(i["status"] == "ok" for i in s["inputs"])


def _no_partials(out: Path) -> None:
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fake", "offline"])
def test_run_killed_midway_resumes(tmp_path: Path, kind: str) -> None:
    write_normals(tmp_path / "normal", n=4, size=(80, 64))
    n = N_IMAGES[kind]
    _images(tmp_path / "imgs", n=n)
    out = tmp_path / "out"
    cmd = [*_cli(kind), "run", "--normal", str(tmp_path / "normal"), "--images", str(tmp_path / "imgs"),
           "--out", str(out), "--profile", "offline", "--num-normal", "4"]
    if kind == "offline":
        cmd += ["--config", str(_small_offline_config(tmp_path))]
    proc = subprocess.Popen(cmd, env=_env(0.15), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _n_ok(out) >= 2, proc)
    proc.send_signal(signal.SIGKILL)  # a power cut: no handler runs
    proc.communicate(timeout=30)
    before = _summary(out)
    assert before is not None and before["complete"] is False
    done = {i["name"] for i in before["inputs"] if i["status"] == "ok"}
    assert 2 <= len(done) < n
    stamps = {n: (out / f"{n}.json").stat().st_mtime_ns for n in done}

    res = subprocess.run(cmd, env=_env(0.0), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    after = _summary(out)
    assert after["complete"] is True and after["status_counts"] == {"ok": n}
    for item in after["inputs"]:
        meta = json.loads((out / f"{item['name']}.json").read_text(encoding="utf-8"))  # every output parses
        score = load_score_map(out / meta["files"]["score_map"])
        assert score.dtype == np.float32 and score.shape == (64, 80) and np.isfinite(score).all()
        Image.open(out / f"{item['name']}_overlay.png").verify()
        assert meta["profile"] == "offline" or kind == "fake"
        if item["name"] in done:  # finished before the kill: reused, not recomputed
            assert item.get("cached") is True
            assert (out / f"{item['name']}.json").stat().st_mtime_ns == stamps[item["name"]]
    assert f"{len(done)} reused" in res.stderr or sum(bool(i.get("cached")) for i in after["inputs"]) >= len(done)
    _no_partials(out)


@pytest.mark.slow
def test_ctrl_c_exits_130_with_summary(tmp_path: Path) -> None:
    write_normals(tmp_path / "normal", n=3)
    _images(tmp_path / "imgs", n=12)
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / f"out_{sig.name}"
        cmd = [*_cli("fake"), "run", "--normal", str(tmp_path / "normal"), "--images", str(tmp_path / "imgs"),
               "--out", str(out), "--profile", "offline"]
        # as from a terminal: SIGINT at its default even when this test runs where it is ignored (a background
        # job of a shell without job control ignores SIGINT, and children inherit that)
        proc = subprocess.Popen(cmd, env=_env(0.2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_sigint_default)
        _wait_for(lambda: _n_ok(out) >= 1, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err[-2000:]
        assert "interrupted" in err and "Traceback" not in err
        s = _summary(out)
        assert s["interrupted"] is True and s["status_counts"].get("pending", 0) > 0
        _no_partials(out)
    res = subprocess.run(cmd, env=_env(0.0), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and _summary(out)["complete"] is True


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _folder_dataset(root: Path, n_test: int) -> None:
    write_normals(root / "normal", n=4, size=(80, 64))
    _images(root / "test" / "scratch", n=n_test)
    (root / "masks" / "scratch").mkdir(parents=True)
    for p in sorted((root / "test" / "scratch").iterdir()):
        m = np.zeros((64, 80), np.uint8)
        m[20:30, 30:45] = 255
        Image.fromarray(m).save(root / "masks" / "scratch" / f"{p.stem}_mask.png")


def _records(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")} if (out / "cache").is_dir() else {}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fake", "offline"])
def test_evaluate_killed_midway_resumes(tmp_path: Path, kind: str) -> None:
    cli = _cli(kind)
    n = N_IMAGES[kind]
    _folder_dataset(tmp_path / "line", n)
    out = tmp_path / "eval"
    cmd = [*cli, "evaluate", "--dataset", "folder", "--root", str(tmp_path / "line"), "--out", str(out),
           "--profile", "offline", "--num-normal", "4", "--eval-size", "32"]
    if kind == "offline":
        cmd += ["--config", str(_small_offline_config(tmp_path))]
    proc = subprocess.Popen(cmd, env=_env(0.15), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: len(_records(out)) >= 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    done = _records(out)
    assert 2 <= len(done) < n and not (out / "metrics.json").exists()

    res = subprocess.run(cmd, env=_env(0.0), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_cached"] >= len(done) and metrics["n_cached"] + metrics["n_predicted"] == n
    assert metrics["failures"] == []
    after = _records(out)
    assert len(after) == n and all(after[p] == t for p, t in done.items())
    _no_partials(out)

    if kind != "fake":
        return
    # an uninterrupted evaluation gives exactly the same metrics
    fresh = tmp_path / "eval_fresh"
    res = subprocess.run([*cmd[:cmd.index("--out") + 1], str(fresh), *cmd[cmd.index("--out") + 2:]], env=_env(0.0),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    again = json.loads((fresh / "metrics.json").read_text(encoding="utf-8"))
    assert again["categories"] == metrics["categories"]


def _small_offline_config(tmp: Path) -> Path:
    """Offline profile at a small feature size so the test stays quick on 2 CPU cores."""
    cfg = tmp / "small.yaml"
    cfg.write_text("feature_size: 128\n")
    return cfg
