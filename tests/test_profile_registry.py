"""A profile is one registered class: one added from the test folder alone (tests/toy_profile.py, no edit
under src/) runs through `run`, `evaluate` and `doctor`, and the verdict and the overlays ask its class."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import iapas.profiles.base as profiles_base
import iapas.profiles.registry as registry
from cli_apps import command_app
from iapas.cli import doctor as doctor_cmd
from iapas.cli import evaluate as evaluate_cmd
from iapas.cli import run as run_cmd
from iapas.context import Context
from iapas.errors import SettingsError
from iapas.pipeline import Pipeline
from iapas.verdict import decide, display_top, threshold_rule
from synthetic_layouts import make_mtd

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def cli(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `iapas` CLI in a new process, with tests/ importable (where toy_profile.py lives)."""
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)]), "HF_HUB_OFFLINE": "1", **(env or {})}
    if registry.MODULES_ENV not in (env or {}):
        full.pop(registry.MODULES_ENV, None)
    return subprocess.run([sys.executable, "-m", "iapas.cli.app", *map(str, args)], env=full, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def grey_folders(root: Path) -> tuple[Path, Path]:
    """Four normal grey images and three to check: one clean, two with a bright square."""
    rng = np.random.default_rng(0)
    normal, images = root / "normal", root / "images"
    normal.mkdir(parents=True)
    images.mkdir()
    for i in range(4):
        Image.fromarray((120 + rng.integers(-5, 5, (32, 32, 3))).astype(np.uint8)).save(normal / f"n{i}.png")
    for i in range(3):
        a = (120 + rng.integers(-5, 5, (32, 32, 3))).astype(np.uint8)
        if i:
            a[8:16, 8:16] = 250
        Image.fromarray(a).save(images / f"t{i}.png")
    return normal, images


@pytest.fixture()
def toy(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The toy profile registered in this process through the env var, undone after the test."""
    registry.profile_names()  # the built-in profiles register first (into the registry that stays)
    copy = dict(registry._REGISTRY)  # one dict for the decorator (profiles.base) and the lookups (registry)
    monkeypatch.setattr(profiles_base, "_REGISTRY", copy)
    monkeypatch.setattr(registry, "_REGISTRY", copy)
    monkeypatch.setattr(registry, "_loaded_plugins", set())
    monkeypatch.setenv(registry.MODULES_ENV, "toy_profile")
    sys.modules.pop("toy_profile", None)
    yield registry.profile_class("toy")
    sys.modules.pop("toy_profile", None)


def invoke(*args: str | Path) -> tuple[int, str]:
    """The CLI's commands in this process (the toy profile is registered here by the `toy` fixture)."""
    result = CliRunner().invoke(command_app(run_cmd, evaluate_cmd, doctor_cmd), [str(a) for a in args],
                                catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_a_profile_from_the_test_folder_runs_through_run_and_evaluate(tmp_path: Path, toy) -> None:  # noqa: ANN001
    normal, images = grey_folders(tmp_path)
    code, err = invoke("run", "--normal", normal, "--images", images, "--out", tmp_path / "out", "--profile", "toy",
                       "--kind", "texture", "--threads", "1")
    assert code == 0, err
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    verdicts = {r.split(",")[0].rsplit("/", 1)[-1]: r.split(",")[1] for r in rows[1:]}
    assert verdicts == {"t0.png": "ok", "t1.png": "defect", "t2.png": "defect"}
    assert all(r.endswith("0.300000,toy: score 0.3") for r in rows[1:])  # the class's threshold and rule
    assert (tmp_path / "out" / "t1_overlay.png").is_file()

    # the verdict and the overlay scale of a toy context come from the class, in this process too
    ctx = Context.load(tmp_path / "out" / "context.json")
    assert ctx.profile == "toy" and ctx.extension is not None and 0.4 < ctx.extension["mean"] < 0.55
    pred = Pipeline.from_context(ctx).predict_one(images / "t1.png", ctx)
    verdict = decide(pred, ctx)
    assert (verdict.label, verdict.threshold) == ("defect", toy.default_threshold(ctx)) == ("defect", 0.3)
    assert display_top(ctx) == 0.45 and threshold_rule(ctx) == "toy: score 0.3"

    root = tmp_path / "mtd"
    make_mtd(root)
    code, err = invoke("evaluate", "--dataset", "mtd", "--root", root, "--out", tmp_path / "ev", "--profile", "toy",
                       "--limit", "4", "--threads", "1")
    assert code == 0, err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["profile"] == "toy" and metrics["categories"]["mtd"]["image_auroc"] > 0.5

    code, err = invoke("run", "--images", images, "--out", tmp_path / "zs", "--profile", "toy")
    assert code == 2 and "zero-shot mode" in err and "offline" in err  # no batch mode: refused, by its class

    code, out = invoke("doctor", "--json", "--profile", "toy")
    assert code == 0, out
    report = json.loads(out[out.index("{"):])
    assert report["profile"]["run_would_use"] == "toy" and "toy" in report["profile"]["registered"]
    assert report["missing"] == {"profile": "toy", "models": []}  # it declares no model


@pytest.mark.slow  # two new processes that import torch
def test_an_entry_point_registers_a_profile_for_doctor(tmp_path: Path) -> None:
    """The mainstream way: a distribution's `iapas.profiles` entry point names the module to import."""
    dist = tmp_path / "site" / "iapas_toy-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: iapas-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\ntoy = toy_profile\n")
    env = {"PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), str(tmp_path / "site")])}
    doctor = cli("doctor", "--json", "--profile", "toy", env=env)
    assert doctor.returncode == 0, doctor.stderr
    report = json.loads(doctor.stdout)
    assert "toy" in report["profile"]["registered"] and report["profile"]["run_would_use"] == "toy"
    assert report["missing"] == {"profile": "toy", "models": []}  # it declares no model
    unknown = cli("doctor", "--json", "--profile", "toy")  # without the entry point: not registered
    assert unknown.returncode == 2 and "toy" in unknown.stderr and "allowed: 'fused'" in unknown.stderr


def test_unknown_profile_module_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_loaded_plugins", set())
    monkeypatch.setenv(registry.MODULES_ENV, "no_such_profile_module")
    with pytest.raises(SettingsError, match="no_such_profile_module"):
        registry.profile_names()


def test_profiles_declare_what_is_asked_of_them() -> None:
    offline, paper, fused = (registry.profile_class(n) for n in ("offline", "paper", "fused"))
    assert offline.models == {"backbone"} and paper.models == {"detector", "segmenter", "tagger", "llm"}
    assert fused.models == paper.models | offline.models
    assert offline.batch_runner is not None and paper.batch_runner is None and fused.batch_runner is None
    assert registry.batch_profiles()[0] == "offline"
    assert offline.display_scale(0.5) == (0.5, pytest.approx(2 / 3)) and paper.display_scale(0.2) == (0.2, 0.5)
    assert offline.eval_kind("object", "texture") == "object" and paper.eval_kind("object", "texture") == "texture"
