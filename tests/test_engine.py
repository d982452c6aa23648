"""The engine layer without Ray: flag validation, the per-image error rule, and errors crossing processes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from iapas.cli.engine_options import engine_choice
from iapas.context import Context
from iapas.config import build_config
from iapas.engines import ImageJob, make_engine
from iapas.engines.base import fatal_error, run_one
from iapas.errors import IapasError, InputError, ModelLoadError, SettingsError


def _ctx() -> Context:
    return Context(profile="offline", config=build_config(profile="offline"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("spark", None, None), "allowed: local, ray"),
        (("local", "auto", None), "need --engine ray"),
        (("local", None, 2), "need --engine ray"),
        (("ray", None, 0), "at least 1"),
    ],
)
def test_engine_flags_are_checked_before_any_model(args: tuple, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        engine_choice(*args)


def test_engine_choice_keeps_the_ray_settings() -> None:
    choice = engine_choice("Ray", "ray://head:10001", 3)
    assert (choice.name, choice.ray.address, choice.ray.actors) == ("ray", "ray://head:10001", 3)
    assert engine_choice("local", None, None).name == "local"


def _raiser(exc: BaseException):  # type: ignore[no-untyped-def]
    def process_one(pipeline, context, path, out, name, digest):  # type: ignore[no-untyped-def]
        raise exc

    return process_one


def test_run_one_fails_the_image_or_stops_the_run(tmp_path: Path) -> None:
    job = ImageJob(Path("a.png"), "a")
    ok = run_one(lambda *a: {"image_score": 0.25}, None, _ctx(), job, tmp_path, "d")
    assert (ok.status, ok.extra, ok.fatal) == ("ok", {"image_score": 0.25}, None)
    bad = run_one(_raiser(InputError("a.png", "file is empty (0 bytes)")), None, _ctx(), job, tmp_path, "d")
    assert (bad.status, bad.error) == ("failed", "file is empty (0 bytes)")
    odd = run_one(_raiser(RuntimeError("boom")), None, _ctx(), job, tmp_path, "d")
    assert odd.status == "failed" and "RuntimeError: boom" in (odd.error or "")
    model = ModelLoadError("org/x", "not found", "pass a local folder")
    stop = run_one(_raiser(model), None, _ctx(), job, tmp_path, "d")
    assert stop.status == "fatal" and stop.fatal is model
    with pytest.raises(KeyboardInterrupt):  # interruption is never swallowed as a per-image failure
        run_one(_raiser(KeyboardInterrupt()), None, _ctx(), job, tmp_path, "d")


def test_fatal_errors_keep_their_type_across_processes() -> None:
    err = fatal_error("ModelLoadError", "cannot load model 'x': gone. do this")
    assert isinstance(err, ModelLoadError) and str(err) == "cannot load model 'x': gone. do this"
    assert type(fatal_error("SettingsError", "bad")) is SettingsError
    assert type(fatal_error("InputError", "x")) is IapasError  # never a per-image error: it stops the run
    assert type(fatal_error("os", "x")) is IapasError  # a name that is no iapas error


def test_local_engine_yields_one_outcome_per_job_in_order(tmp_path: Path) -> None:
    seen: list[str] = []

    def process_one(pipeline, context, path, out, name, digest):  # type: ignore[no-untyped-def]
        seen.append(name)
        if name == "b":
            raise InputError(path, "not an image")
        return {"image_score": len(seen)}

    engine = make_engine(None, process_one, None, _ctx(), tmp_path, "d")
    outcomes = list(engine.map([ImageJob(Path(f"{n}.png"), n) for n in "abc"]))
    assert engine.name == "local" and seen == ["a", "b", "c"]
    assert [(o.name, o.status) for o in outcomes] == [("a", "ok"), ("b", "failed"), ("c", "ok")]


def test_ray_worker_reports_a_model_problem_as_fatal_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The actor body without Ray: a model that cannot load makes every row 'fatal' with its error type, which
    the driver turns back into the same error (and exit status) as a local run."""
    import os

    import numpy as np
    from PIL import Image

    import iapas.pipeline
    from fake_profile import use_mean_diff
    from iapas.outputs.run_items import process_one
    from iapas.engines.ray_engine import StageTwoWorker

    Image.fromarray(np.full((32, 40, 3), 90, np.uint8)).save(tmp_path / "a.png")
    batch = {"path": np.array([os.fsencode(tmp_path / "a.png")], dtype=object), "name": np.array(["a"], dtype=object)}
    config = build_config(profile="offline")

    def broken(profile, config):  # type: ignore[no-untyped-def]
        raise ModelLoadError("org/detector", "weights not found", "pass a local folder")

    real = iapas.pipeline.make_runner
    monkeypatch.setattr(iapas.pipeline, "make_runner", broken)
    rows = StageTwoWorker(process_one, config, _ctx(), str(tmp_path / "out"), "d")(batch)
    assert rows["status"] == ["fatal"] and rows["error_type"] == ["ModelLoadError"]
    err = fatal_error(rows["error_type"][0], rows["error"][0])
    assert isinstance(err, ModelLoadError) and "org/detector" in str(err)

    monkeypatch.setattr(iapas.pipeline, "make_runner", real)
    use_mean_diff(monkeypatch)  # through the registry now
    ctx = Context(profile="offline", config=config, extension={"mean_grey": 0.2})
    rows = StageTwoWorker(process_one, config, ctx, str(tmp_path / "out"), "d")(batch)
    assert rows["status"] == ["ok"] and rows["error"] == [""]
    assert json.loads(rows["extra"][0])["image_score"] > 0
    assert (tmp_path / "out" / "a.json").is_file() and (tmp_path / "out" / "a_mask.png").is_file()
