"""`--engine ray` fails fast on an address where no cluster answers, starts its own local instance whatever
RAY_ADDRESS says (only `--ray-address auto` follows it), gives each actor the threads it reserved, so a run
with two actors is byte-identical to a local `--threads 1` run, and installs the Ray Client with its extra."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers

from corpus import pattern, write_normals  # noqa: E402

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
ROOT = Path(__file__).resolve().parents[2]
STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d UTC")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iapas.config import build_config
    from iapas.pipeline import Pipeline

    root = tmp_path_factory.mktemp("ray_safety")
    write_normals(root / "normal", n=3, size=(80, 64))
    (root / "imgs").mkdir()
    for i in range(6):
        img = pattern(64, 80, seed=300 + i)
        if i % 2 == 0:
            img[15 + i:28 + i, 20:40] = 255
        Image.fromarray(img).save(root / "imgs" / f"part_{i}.png")
    Pipeline(build_config(profile="offline", num_normal=3, feature_size=128)).fit(root / "normal").save(root / "ctx.json")
    return root


def segment(data: Path, out: Path, *extra: str, env: dict[str, str] | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "iapas.cli.app", "segment", "--context", str(data / "ctx.json"), "--images",
           str(data / "imgs"), "--out", str(out), *extra]
    import iapas

    full = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(iapas.__file__).parents[1]), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): STAMP.sub(b"", p.read_bytes()) if p.suffix == ".html" else p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_unreachable_address_fails_fast_with_a_clear_error(data: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    done = segment(data, tmp_path / "out", "--engine", "ray", "--ray-address", "127.0.0.1:1", timeout=90)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cannot reach 127.0.0.1:1" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - t0 < 60


def test_ray_extra_installs_the_client() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(re.fullmatch(r"ray\[([a-z,]+)\]", d) and "client" in d for d in extras["ray"])


@pytest.mark.slow
def test_starting_ray_keeps_the_clis_sigterm_handler() -> None:
    """A SIGTERM during a Ray run must reach the CLI's handler (which records `interrupted: true`), not Ray's
    plain exit."""
    import signal

    import ray

    from iapas.cli.common import terminate_as_interrupt
    from iapas.engines.ray_engine import connect

    assert not ray.is_initialized()
    with terminate_as_interrupt():
        ours = signal.getsignal(signal.SIGTERM)
        try:
            assert connect(None) is True
            assert signal.getsignal(signal.SIGTERM) is ours
        finally:
            ray.shutdown()


@pytest.mark.slow
def test_actor_threads_follow_the_reserved_cpus(ray_session, data: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from iapas.config import build_config
    from iapas.context import Context
    from iapas.engines import ImageJob, RayMapper, RaySettings
    from iapas.pipeline import Pipeline

    class ThreadsOf:  # defined here so Ray pickles it by value; runs in the actor
        out_dir = tmp_path

        def __call__(self, pipeline, context, task):  # noqa: ANN001, ANN204
            import torch

            _ = pipeline.runner  # what applies the thread budget
            return {"threads": torch.get_num_threads()}

    jobs = [ImageJob(p, p.stem) for p in sorted((data / "imgs").iterdir())[:4]]
    config = build_config(profile="offline")  # no --threads: each actor takes its one reserved CPU
    mapper = RayMapper(RaySettings(actors=2))
    outcomes = list(mapper.map(Pipeline(config), Context.load(data / "ctx.json"), ThreadsOf(), jobs))
    assert [o.status for o in outcomes] == ["ok"] * 4
    assert {o.value["threads"] for o in outcomes} == {1}


@pytest.mark.slow
def test_ray_address_in_the_environment_is_ignored_and_outputs_match_threads_1(data: Path, tmp_path: Path) -> None:
    local = segment(data, tmp_path / "local", "--threads", "1")
    assert local.returncode == 0, local.stderr[-2000:]
    ray_run = segment(data, tmp_path / "ray", "--engine", "ray", "--ray-actors", "2",
                      env={"RAY_ADDRESS": "127.0.0.1:1"})  # a dead address: following it would hang or fail
    assert ray_run.returncode == 0, ray_run.stderr[-3000:]
    a, b = files(tmp_path / "local"), files(tmp_path / "ray")
    assert a.keys() == b.keys()
    assert [n for n in a if a[n] != b[n]] == []
