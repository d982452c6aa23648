"""`--engine ray` on a real local Ray instance (no network): the same files as the local engine, the same
resume behaviour, and a worker killed mid-run retried by Ray without lost or duplicated results.

One Ray session for the module (starting Ray costs seconds); the local reference run uses `--threads 1`
because each Ray actor runs with the one CPU it reserves, and the float sums inside a convolution depend on
the number of threads (with equal threads the files are byte for byte the same).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli_apps import command_app
from corpus import pattern, write_normals
from iapas.cli import run as run_cli
from iapas.config import build_config
from iapas.pipeline import Pipeline

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install '.[ray]')"),
]
N_IMAGES = 24


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Normal images, a context fitted on them, and images to check (one of them not an image)."""
    root = tmp_path_factory.mktemp("engine")
    write_normals(root / "normal", n=4, size=(80, 64))
    (root / "imgs").mkdir()
    for i in range(N_IMAGES):
        img = pattern(64, 80, seed=100 + i)
        if i % 3 == 0:
            img[20:30, 30:45] = 255
        Image.fromarray(img).save(root / "imgs" / f"part_{i:03d}.png")
    (root / "imgs" / "broken.png").write_text("not an image\n")
    context = Pipeline(build_config(profile="offline", num_normal=4, feature_size=128)).fit(root / "normal")
    context.save(root / "ctx.json")
    return root


def _segment(data: Path, out: Path, *extra: str) -> int:
    app = command_app(run_cli)
    args = ["segment", "--context", str(data / "ctx.json"), "--images", str(data / "imgs"), "--out", str(out), *extra]
    return CliRunner().invoke(app, args, catch_exceptions=False).exit_code


@pytest.fixture(scope="module")
def local_out(data: Path) -> Path:
    out = data / "out_local"
    assert _segment(data, out, "--threads", "1") == 3  # one thread, as each Ray actor; one input is not an image
    return out


STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d UTC")  # when report.html was written


def _files(folder: Path) -> dict[str, bytes]:
    """Every output file under `folder` (per-image files, thumbnails, summary, results.csv, report), not the lock;
    report pages without the minute they were written."""
    return {str(p.relative_to(folder)): STAMP.sub(b"<time>", p.read_bytes()) if p.suffix == ".html" else p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def _assert_same_outputs(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for i in range(N_IMAGES):
        assert {f"part_{i:03d}{s}" for s in (".json", ".npz", "_mask.png", "_overlay.png")} <= set(fa)
    assert {"summary.json", "results.csv", "report.html"} <= set(fa)
    different = [name for name in fa if fa[name] != fb[name]]
    assert not different, f"files differ between engines: {different[:5]}"


def test_ray_engine_writes_the_same_files_and_resumes_like_local(ray_session, data: Path, local_out: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "out_ray"
    assert _segment(data, out, "--engine", "ray", "--ray-actors", "2") == 3
    _assert_same_outputs(local_out, out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status_counts"] == {"ok": N_IMAGES, "failed": 1} and summary["complete"] is True
    assert "not an image" in summary["failures"][0]["error"]

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    assert _segment(data, out, "--engine", "ray") == 3  # rerun: every finished image is reused
    again = json.loads((out / "summary.json").read_text())
    assert sum(bool(i.get("cached")) for i in again["inputs"]) == N_IMAGES
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")} == stamps


def _worker_pids() -> list[int]:
    """Processes of the Ray actors running StageTwoWorker (Ray names them after the class)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"StageTwoWorker" in cmd:
                pids.append(int(proc.name))
    return pids


def test_a_killed_worker_is_retried_without_lost_or_duplicated_results(ray_session, data: Path, local_out: Path,
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "out_kill"
    killed: dict = {}

    def kill_one_worker_midway() -> None:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            done = len(list(out.glob("part_*.json"))) if out.is_dir() else 0
            pids = _worker_pids()
            if done >= 1 and pids and "pid" not in killed:  # as early as possible: a loaded CI box may finish fast
                os.kill(pids[0], signal.SIGKILL)
                killed.update(pid=pids[0], done=done, before=set(pids))
            elif "pid" in killed and set(pids) - killed["before"]:
                killed["restarted"] = 1  # Ray started a new actor process in place of the dead one
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_one_worker_midway, daemon=True)
    watcher.start()
    code = _segment(data, out, "--engine", "ray", "--ray-actors", "2")
    watcher.join(timeout=5)
    assert killed, "no Ray worker was found to kill"
    assert killed["done"] < N_IMAGES, "the run finished before the worker was killed"
    assert code == 3
    assert killed.get("restarted"), "Ray did not restart the killed actor"
    summary = json.loads((out / "summary.json").read_text())
    names = [i["name"] for i in summary["inputs"]]
    assert len(names) == len(set(names)) == N_IMAGES + 1  # each input once
    assert summary["status_counts"] == {"ok": N_IMAGES, "failed": 1} and summary["complete"] is True
    _assert_same_outputs(local_out, out)
    assert not list(out.glob(".*.tmp"))  # no partial file left by the killed worker


def test_local_and_ray_mappers_give_the_same_outcomes(ray_session, data: Path, tmp_path: Path) -> None:
    """The same work over the same tasks: the same statuses, values and typed failures (an input error fails
    its image and the map goes on), only the order may differ."""
    from iapas.cli.run_common import WriteOutputs
    from iapas.context import Context
    from iapas.engines import ImageJob, LocalMapper, RayMapper, RaySettings

    context = Context.load(data / "ctx.json")
    pipeline = Pipeline(context.config.model_copy(update={"profile": context.profile, "threads": 1}))
    jobs = [ImageJob(p, p.stem) for p in sorted((data / "imgs").iterdir())[:5]]  # broken.png among them
    local = list(LocalMapper().map(pipeline, context, WriteOutputs(tmp_path / "local", "d"), jobs))
    ray_run = list(RayMapper(RaySettings(actors=2)).map(pipeline, context, WriteOutputs(tmp_path / "ray", "d"), jobs))

    def view(outcomes):  # noqa: ANN001, ANN202
        return sorted((o.task.name, o.status, json.dumps(o.value, sort_keys=True),
                       (o.failure.path, o.failure.reason, o.failure.unexpected) if o.failure else None)
                      for o in outcomes)

    assert view(ray_run) == view(local)
    failed = [o for o in ray_run if o.status == "failed"]
    assert [o.task.name for o in failed] == ["broken"] and failed[0].failure.path.endswith("broken.png")
    assert sum(o.status == "ok" for o in ray_run) == 4


def test_a_fatal_error_stops_the_ray_map_with_its_type(ray_session, data: Path, tmp_path: Path) -> None:
    from iapas.context import Context
    from iapas.engines import ImageJob, RayMapper, RaySettings
    from iapas.errors import SettingsError

    class StopOnSecond:  # defined here so Ray pickles it by value; runs in the actor
        out_dir = tmp_path

        def __call__(self, pipeline, context, task):  # noqa: ANN001, ANN204
            if task.name == "part_001":
                raise SettingsError("the detector's settings do not fit this image")
            return {}

    context = Context.load(data / "ctx.json")
    jobs = [ImageJob(p, p.stem) for p in sorted((data / "imgs").iterdir())[:3]]
    with pytest.raises(SettingsError, match="do not fit"):
        list(RayMapper(RaySettings(actors=1)).map(Pipeline(context.config.model_copy(update={"profile": context.profile})),
                                                  context, StopOnSecond(), jobs))
