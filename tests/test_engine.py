"""The mappers without Ray: flag validation, the per-image error rule, typed outcomes, and errors crossing
processes."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from iapas.cli.engine_options import engine_choice
from iapas.context import Context
from iapas.config import build_config
from iapas.engines import ImageFailure, ImageJob, LocalMapper, fatal_error, make_mapper, run_task
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


@dataclass(frozen=True)
class Raise:
    """Work that raises `exc` for the task named `on` and returns a small value for the others."""

    exc: BaseException | None = None
    on: str = ""
    out_dir: Path = Path(".")

    def __call__(self, pipeline, context, task):  # type: ignore[no-untyped-def]
        if self.exc is not None and task.name == self.on:
            raise self.exc
        return {"image_score": 0.25, "name": task.name}


def test_run_task_fails_the_image_or_stops_the_run() -> None:
    job = ImageJob(Path("a.png"), "a")
    ok = run_task(Raise(), None, _ctx(), job)
    assert (ok.status, ok.value, ok.failure, ok.fatal) == ("ok", {"image_score": 0.25, "name": "a"}, None, None)
    bad = run_task(Raise(InputError("a_mask.png", "file is empty (0 bytes)"), "a"), None, _ctx(), job)
    assert bad.status == "failed" and bad.failure == ImageFailure("a_mask.png", "file is empty (0 bytes)")
    odd = run_task(Raise(RuntimeError("boom"), "a"), None, _ctx(), job)
    assert odd.status == "failed" and odd.failure is not None and odd.failure.unexpected
    assert "RuntimeError: boom" in odd.failure.reason and odd.failure.path == "a.png"
    assert isinstance(odd.failure.cause, RuntimeError)
    model = ModelLoadError("org/x", "not found", "pass a local folder")
    stop = run_task(Raise(model, "a"), None, _ctx(), job)
    assert stop.status == "fatal" and stop.fatal is model and stop.failure is None
    with pytest.raises(KeyboardInterrupt):  # interruption is never swallowed as a per-image failure
        run_task(Raise(KeyboardInterrupt(), "a"), None, _ctx(), job)


def test_fatal_errors_keep_their_type_across_processes() -> None:
    err = fatal_error("ModelLoadError", "cannot load model 'x': gone. do this")
    assert isinstance(err, ModelLoadError) and str(err) == "cannot load model 'x': gone. do this"
    assert type(fatal_error("SettingsError", "bad")) is SettingsError
    assert type(fatal_error("InputError", "x")) is IapasError  # never a per-image error: it stops the run
    assert type(fatal_error("os", "x")) is IapasError  # a name that is no iapas error


def test_local_mapper_yields_one_outcome_per_task_in_order_and_goes_on_after_an_input_error() -> None:
    jobs = [ImageJob(Path(f"{n}.png"), n) for n in "abc"]
    mapper = make_mapper(None)
    outcomes = list(mapper.map(None, _ctx(), Raise(InputError("b.png", "not an image"), "b"), jobs))
    assert mapper.name == "local" and [o.task for o in outcomes] == jobs
    assert [o.status for o in outcomes] == ["ok", "failed", "ok"]
    assert outcomes[1].failure == ImageFailure("b.png", "not an image") and outcomes[2].value["name"] == "c"


def test_a_fatal_error_stops_the_local_map_with_its_type() -> None:
    jobs = [ImageJob(Path(f"{n}.png"), n) for n in "abc"]
    model = ModelLoadError("org/x", "not found", "pass a local folder")
    seen = []
    with pytest.raises(ModelLoadError) as caught:
        for outcome in LocalMapper().map(None, _ctx(), Raise(model, "b"), jobs):
            seen.append(outcome.task.name)
    assert caught.value is model and seen == ["a"]  # "c" is never processed


def test_ray_worker_reports_a_model_problem_as_fatal_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The actor body without Ray: a model that cannot load makes every row 'fatal' with its error type, which
    the driver turns back into the same error (and exit status) as a local run."""
    import numpy as np
    from PIL import Image

    import iapas.pipeline
    from fake_profile import use_mean_diff
    from iapas.cli.run_common import WriteOutputs
    from iapas.engines.ray_engine import StageTwoWorker

    Image.fromarray(np.full((32, 40, 3), 90, np.uint8)).save(tmp_path / "a.png")
    batch = {"index": np.array([0])}
    tasks = [ImageJob(tmp_path / "a.png", "a")]
    work = WriteOutputs(tmp_path / "out", "d")
    config = build_config(profile="offline")

    def broken(profile, config):  # type: ignore[no-untyped-def]
        raise ModelLoadError("org/detector", "weights not found", "pass a local folder")

    real = iapas.pipeline.make_runner
    monkeypatch.setattr(iapas.pipeline, "make_runner", broken)
    rows = StageTwoWorker(work, config, _ctx(), tasks)(batch)
    assert rows["status"] == ["fatal"] and rows["error_type"] == ["ModelLoadError"]
    err = fatal_error(rows["error_type"][0], rows["error"][0])
    assert isinstance(err, ModelLoadError) and "org/detector" in str(err)

    monkeypatch.setattr(iapas.pipeline, "make_runner", real)
    use_mean_diff(monkeypatch)  # through the registry now
    ctx = Context(profile="offline", config=config, extension={"mean_grey": 0.2})
    rows = StageTwoWorker(work, config, ctx, tasks)(batch)
    assert rows["status"] == ["ok"] and rows["error"] == [""] and rows["index"] == [0]
    assert json.loads(rows["value"][0])["image_score"] > 0
    assert (tmp_path / "out" / "a.json").is_file() and (tmp_path / "out" / "a_mask.png").is_file()
