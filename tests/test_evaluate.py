"""The evaluate harness end to end on synthetic datasets, with a small fake profile (brightness scoring).

The fake profile is registered through iapas.pipeline.make_runner, so these tests exercise the real
Pipeline, dataset readers, cache, metrics and writers without depending on model weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from PIL import Image
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from typer.testing import CliRunner

import iapas.pipeline
from cli_apps import command_app
from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.engines import LocalMapper
from iapas.errors import ModelLoadError, SettingsError
from iapas.evaluation.harness import EvalOptions, run_evaluation
from iapas.evaluation.records import iter_records
from iapas.metrics import aupro
from iapas.types import Prediction
from synthetic_layouts import make_mtd, make_mvtec_like

pytestmark = pytest.mark.slow  # end to end: left out of the `-m "not slow"` loop, run in CI

KEYS = ("pixel_ap", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_ap", "image_auroc", "image_f1_max")


class BrightnessRunner:
    """Scores pixels by blurred brightness relative to the normal images' mean; counts its calls."""

    name = "offline"

    def __init__(self, interrupt_after: int | None = None) -> None:
        self.fits = 0
        self.predicts = 0
        self.interrupt_after = interrupt_after

    def __call__(self, profile, config):
        """The registry's factory signature: this runner, now holding `config` (given once, as real runners)."""
        self.config = config
        return self

    def fit(self, normal):
        config = self.config
        self.fits += 1
        ctx = Context(profile="offline", config=config, normal_images=[im.path for im in normal], seed=config.seed)
        ctx.extension = {"mean": float(np.mean([im.rgb.mean() for im in normal])) / 255.0}  # a plug-in's own record
        return ctx

    def predict(self, image, context):
        if self.interrupt_after is not None and self.predicts >= self.interrupt_after:
            raise KeyboardInterrupt
        self.predicts += 1
        gray = image.rgb.astype(np.float32).mean(axis=2) / 255.0
        score = np.clip(ndimage.gaussian_filter(gray, 1.5) - context.extension["mean"], 0, 1).astype(np.float32)
        return Prediction(path=image.path, score_map=score, mask=score > 0.3, boxes=[],
                          image_score=float(score.max()), profile="offline")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> BrightnessRunner:
    r = BrightnessRunner()
    monkeypatch.setattr(iapas.pipeline, "make_runner", r)
    return r


@pytest.fixture(scope="module")
def mtd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mtd")
    make_mtd(root)
    return root


def cfg(**kw) -> PipelineConfig:
    return PipelineConfig(profile="offline", num_normal=4, **kw)


def sk_f1(y, s) -> float:
    p, r, _ = precision_recall_curve(y, s)
    d = p + r
    return float(np.max(np.divide(2 * p * r, d, out=np.zeros_like(d), where=d > 0)))


def test_standard_protocol_end_to_end(tmp_path: Path, mtd_root: Path, runner: BrightnessRunner) -> None:
    out = tmp_path / "eval"
    m = run_evaluation("mtd", mtd_root, out, cfg(), EvalOptions(eval_size=32, progress=False))
    assert set(m) >= {"dataset", "profile", "protocol", "seeds", "categories", "mean", "images_per_second", "failures"}
    assert (m["dataset"], m["profile"], m["protocol"], m["seeds"]) == ("mtd", "offline", "standard", [111])
    row = m["categories"]["mtd"]
    assert (row["n_images"], row["n_anomalous"]) == (14 - 4 + 6, 6)  # sampled normals left the test set
    assert m["images_per_second"] > 0 and m["failures"] == [] and runner.fits == 1

    recs = list(iter_records(out, "mtd", 111))
    assert len(recs) == 16 and all(r.score_map.shape == (32, 32) for r in recs)
    ctx = json.loads((out / "contexts" / "mtd" / "seed111.json").read_text())
    assert len(ctx["normal_images"]) == 4
    assert not set(ctx["normal_images"]) & {r.image_path for r in recs}

    s = np.concatenate([r.score_map.ravel() for r in recs])
    y = np.concatenate([r.gt_mask.ravel() for r in recs])
    assert row["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert row["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert row["pixel_f1_max"] == pytest.approx(sk_f1(y, s), abs=1e-9)
    assert row["pixel_aupro"] == pytest.approx(aupro([r.score_map for r in recs], [r.gt_mask for r in recs]))
    il = np.array([r.label for r in recs])
    isc = np.array([r.image_score for r in recs])
    assert row["image_auroc"] == pytest.approx(roc_auc_score(il, isc), abs=1e-9)
    assert row["image_ap"] == pytest.approx(average_precision_score(il, isc), abs=1e-9)
    assert 0.0 < row["pixel_ap"] < 1.0  # the fake profile is good but not perfect
    assert all(m["mean"][k] == row[k] for k in KEYS)

    md = (out / "metrics.md").read_text()
    assert "protocol `standard`" in md and "offline" in md and f"{100 * row['pixel_ap']:.2f}" in md
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("dataset,profile,protocol,category,pixel_ap") and len(csv_lines) == 3
    assert json.loads((out / "metrics_standard.json").read_text()) == m


def test_paper_protocol_shares_stage1_and_writes_its_own_tables(tmp_path: Path, mtd_root: Path,
                                                                runner: BrightnessRunner) -> None:
    """MTD under --protocol paper beside the standard run (the official numbers themselves are checked against
    an independent re-implementation in tests/test_official_evaluation.py)."""
    out = tmp_path / "eval"
    std = run_evaluation("mtd", mtd_root, out, cfg(), EvalOptions(eval_size=32, progress=False))
    fits = runner.fits
    m = run_evaluation("mtd", mtd_root, out, cfg(), EvalOptions(protocol="paper", eval_size=32, progress=False))
    assert runner.fits == fits  # Stage 1 is reused: it does not depend on the protocol
    row = m["categories"]["mtd"]
    assert m["protocol"] == "paper" and "official" in m["protocol_note"] and m["resample"] == "cubic"
    assert "MT_Free included" in m["selection"]["mtd"] and "scored too" in m["selection"]["mtd"]
    assert (row["n_images"], row["n_anomalous"]) == (20, 6)  # every tile, the 4 Stage 1 images included
    assert std["categories"]["mtd"]["n_images"] == 16  # standard: Stage 1's images are left out
    records = [r for r in iter_records(out, "mtd") if r.map_range is None]  # the paper records
    assert len(records) == 20 and all(r.score_map.dtype == np.float64 for r in records)
    assert row["pixel_ap"] != std["categories"]["mtd"]["pixel_ap"]
    assert "protocol `paper`" in (out / "metrics.md").read_text()
    assert (out / "metrics_standard.md").is_file() and (out / "metrics_paper.md").is_file()
    assert all(line.split(",")[2] == "paper" for line in (out / "metrics.csv").read_text().splitlines()[1:])


def test_paper_protocol_keeps_normal_images_on_mvtec(tmp_path: Path, runner: BrightnessRunner) -> None:
    make_mvtec_like(tmp_path / "mv")
    m = run_evaluation("mvtec", tmp_path / "mv", tmp_path / "o", cfg(),
                       EvalOptions(protocol="paper", eval_size=24, progress=False, auto_kind=True))
    assert m["categories"]["bottle"]["n_images"] == 6 and m["categories"]["carpet"]["n_images"] == 5
    assert m["kinds"] == {"bottle": "object", "carpet": "texture"}
    assert m["mean"]["n_images"] == 11 and runner.fits == 2
    rounded = [round(100 * m["categories"][c]["pixel_ap"], 2) / 100 for c in ("bottle", "carpet")]
    assert m["mean"]["pixel_ap"] == pytest.approx(sum(rounded) / 2, abs=1e-12)  # the official table's mean


def test_interrupted_run_resumes_with_identical_metrics(tmp_path: Path, mtd_root: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    full = BrightnessRunner()
    monkeypatch.setattr(iapas.pipeline, "make_runner", full)
    ref = run_evaluation("mtd", mtd_root, tmp_path / "ref", cfg(), EvalOptions(eval_size=32, progress=False))

    broken = BrightnessRunner(interrupt_after=5)
    monkeypatch.setattr(iapas.pipeline, "make_runner", broken)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation("mtd", mtd_root, tmp_path / "out", cfg(), EvalOptions(eval_size=32, progress=False))
    assert len(list((tmp_path / "out" / "cache").rglob("*.npz"))) == 5
    assert not (tmp_path / "out" / "metrics.json").exists()

    again = BrightnessRunner()
    monkeypatch.setattr(iapas.pipeline, "make_runner", again)
    m = run_evaluation("mtd", mtd_root, tmp_path / "out", cfg(), EvalOptions(eval_size=32, progress=False))
    assert again.fits == 0  # the saved Stage 1 context was reused
    assert again.predicts == 16 - 5 and m["n_cached"] == 5
    assert m["categories"] == ref["categories"] and m["mean"] == ref["mean"]

    m2 = run_evaluation("mtd", mtd_root, tmp_path / "out", cfg(), EvalOptions(eval_size=32, progress=False))
    assert again.predicts == 11 and m2["categories"] == ref["categories"] and m2["n_predicted"] == 0
    # a different setting never reuses these records
    run_evaluation("mtd", mtd_root, tmp_path / "out", cfg(), EvalOptions(eval_size=24, progress=False))
    assert again.predicts == 11 + 16


def test_bad_image_is_recorded_and_the_run_goes_on(tmp_path: Path, runner: BrightnessRunner) -> None:
    make_mtd(tmp_path / "d")
    bad = tmp_path / "d" / "MT_Crack" / "Imgs" / "exp1_num_0.jpg"
    bad.write_bytes(b"not a jpeg at all")
    (tmp_path / "d" / "MT_Blowhole" / "Imgs" / "exp1_num_1.png").unlink()  # missing mask
    m = run_evaluation("mtd", tmp_path / "d", tmp_path / "o", cfg(), EvalOptions(eval_size=16, progress=False))
    paths = {f["path"] for f in m["failures"]}
    assert str(bad) in paths and any(p.endswith("exp1_num_1.png") for p in paths)
    assert m["categories"]["mtd"]["n_images"] == 16 - 2
    assert all(f["error"] for f in m["failures"])


def test_several_seeds_report_mean_and_std(tmp_path: Path, mtd_root: Path, runner: BrightnessRunner) -> None:
    m = run_evaluation("mtd", mtd_root, tmp_path / "o", cfg(),
                       EvalOptions(seeds=[111, 112, 113], eval_size=16, progress=False))
    assert m["seeds"] == [111, 112, 113] and runner.fits == 3
    per = [m["per_seed"][str(s)]["mtd"]["pixel_ap"] for s in (111, 112, 113)]
    assert m["categories"]["mtd"]["pixel_ap"] == pytest.approx(np.mean(per))
    assert m["std"]["categories"]["mtd"]["pixel_ap"] == pytest.approx(np.std(per))
    samples = {s: tuple(json.loads((tmp_path / "o" / "contexts" / "mtd" / f"seed{s}.json").read_text())["normal_images"])
               for s in (111, 112, 113)}
    assert len(set(samples.values())) > 1
    assert "±" in (tmp_path / "o" / "metrics.md").read_text()


def test_limit_takes_an_even_spread(tmp_path: Path, mtd_root: Path, runner: BrightnessRunner) -> None:
    m = run_evaluation("mtd", mtd_root, tmp_path / "o", cfg(), EvalOptions(limit=5, eval_size=16, progress=False))
    row = m["categories"]["mtd"]
    assert row["n_images"] == 5 and 0 < row["n_anomalous"] < 5 and runner.predicts == 5


def test_settings_are_checked_before_any_model_loads(tmp_path: Path, mtd_root: Path, monkeypatch) -> None:
    def boom(*a, **k):
        raise AssertionError("a model was loaded before the settings were checked")

    monkeypatch.setattr(iapas.pipeline, "make_runner", boom)
    cases = [
        (dict(dataset="mvtec3d"), "allowed: btad"),
        (dict(protocol="strict"), "allowed: standard, paper"),
        (dict(categories=["mtd", "tiles"]), "tiles"),
        (dict(eval_size=4), "eval-size"),
        (dict(seeds=[]), "seed"),
        (dict(limit=0), "limit"),
    ]
    for kw, msg in cases:
        dataset = kw.pop("dataset", "mtd")
        with pytest.raises(SettingsError, match=msg):
            run_evaluation(dataset, mtd_root, tmp_path / "o", cfg(), EvalOptions(progress=False, **kw))


def test_cli_evaluate(tmp_path: Path, mtd_root: Path, runner: BrightnessRunner) -> None:
    from iapas.cli import evaluate

    app = command_app(evaluate)
    cli = CliRunner()
    out = tmp_path / "o"
    res = cli.invoke(app, ["evaluate", "--dataset", "mtd", "--root", str(mtd_root), "--out", str(out),
                           "--profile", "offline", "--num-normal", "4", "--eval-size", "16", "--seeds", "111,112",
                           "--limit", "6", "--report"])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").is_file() or "not available" in res.output
    assert "Pixel AP" in res.output and "protocol `standard`" in res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["seeds"] == [111, 112] and m["config"]["num_normal"] == 4 and m["kinds"] == {"mtd": "texture"}
    res = cli.invoke(app, ["evaluate", "--dataset", "nope", "--root", str(mtd_root), "--out", str(out)])
    assert res.exit_code == 2 and "mvtec" in res.output
    res = cli.invoke(app, ["evaluate", "--dataset", "mtd", "--root", str(mtd_root), "--out", str(out),
                           "--seeds", "1,x"])
    assert res.exit_code == 2


def test_paper_preset_puts_every_mvtec_category_at_the_object_threshold(tmp_path: Path, runner: BrightnessRunner) -> None:
    """Table 1 lists MVTec-AD among the object datasets: 0.2 on carpet too; per-category keeps 0.1."""
    make_mvtec_like(tmp_path / "mv")
    paper = PipelineConfig(profile="paper", num_normal=4)
    m = run_evaluation("mvtec", tmp_path / "mv", tmp_path / "o1", paper,
                       EvalOptions(eval_size=16, progress=False, auto_kind=True))
    assert m["kinds"] == {"bottle": "object", "carpet": "object"}
    ours = paper.model_copy(update={"texture_preset": "per-category"})
    m = run_evaluation("mvtec", tmp_path / "mv", tmp_path / "o2", ours,
                       EvalOptions(eval_size=16, progress=False, auto_kind=True))
    assert m["kinds"] == {"bottle": "object", "carpet": "texture"}


def test_overwritten_normal_images_refit_and_recompute(tmp_path: Path, runner: BrightnessRunner) -> None:
    """Issue 12 item 4 for `evaluate`: the cache follows the sampled normal images' content, not their names."""
    root = tmp_path / "mtd"
    make_mtd(root)
    run_evaluation("mtd", root, tmp_path / "o", cfg(), EvalOptions(eval_size=16, progress=False))
    fits, predicts = runner.fits, runner.predicts
    run_evaluation("mtd", root, tmp_path / "o", cfg(), EvalOptions(eval_size=16, progress=False))
    assert (runner.fits, runner.predicts) == (fits, predicts)  # unchanged inputs: all from cache
    for p in sorted((root / "MT_Free" / "Imgs").glob("*.jpg")):
        Image.fromarray(np.full((28, 40), 90, np.uint8)).save(p)  # same names, new content
    run_evaluation("mtd", root, tmp_path / "o", cfg(), EvalOptions(eval_size=16, progress=False))
    assert runner.fits == fits + 1 and runner.predicts == 2 * predicts  # Stage 1 and every record redone


TIMING = ("wall_seconds", "images_per_second")  # the only fields of metrics.json that depend on the clock


class ReversedMapper:
    """A mapper that answers in reverse order (as a Ray pool may), on top of the local one; counts its maps."""

    name = "reversed"

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def map(self, pipeline, ctx, work, tasks):  # noqa: ANN001, ANN201 - the Mapper protocol
        self.sizes.append(len(tasks))
        yield from reversed(list(LocalMapper().map(pipeline, ctx, work, list(reversed(tasks)))))


def test_the_todo_goes_through_the_given_mapper(tmp_path: Path, runner: BrightnessRunner) -> None:
    """A mapper that answers in reverse order gives the local mapper's metrics, records and failures (in test order)."""
    make_mtd(tmp_path / "d")
    (tmp_path / "d" / "MT_Crack" / "Imgs" / "exp1_num_0.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "d" / "MT_Blowhole" / "Imgs" / "exp1_num_1.png").unlink()  # missing mask: failure path is the mask's
    opts = EvalOptions(seeds=[111, 112], eval_size=16, progress=False)
    ref = run_evaluation("mtd", tmp_path / "d", tmp_path / "local", cfg(), opts)
    mapper = ReversedMapper()
    m = run_evaluation("mtd", tmp_path / "d", tmp_path / "eng", cfg(), opts, mapper)
    assert mapper.sizes == [16, 16]  # one map per category/seed job, with every image still to do
    assert len(m["failures"]) == 4 and [f["path"] for f in m["failures"]] == [f["path"] for f in ref["failures"]]
    assert any(f["path"].endswith("exp1_num_1.png") for f in m["failures"])
    assert {k: v for k, v in m.items() if k not in TIMING} == {k: v for k, v in ref.items() if k not in TIMING}
    rel = lambda root: sorted(str(p.relative_to(root)) for p in (root / "cache").rglob("*.npz"))  # noqa: E731
    assert rel(tmp_path / "eng") == rel(tmp_path / "local") and len(rel(tmp_path / "eng")) == 2 * 14

    mapper.sizes.clear()
    again = run_evaluation("mtd", tmp_path / "d", tmp_path / "eng", cfg(), opts, mapper)
    assert mapper.sizes == [2, 2] and again["n_cached"] == 2 * 14  # resume: only the failed images are tried again
    assert again["categories"] == ref["categories"]


@pytest.mark.parametrize("error", [ValueError("odd map"), ModelLoadError("org/x", "gone", "pass a folder")])
def test_an_error_that_is_not_the_inputs_stops_the_evaluation_with_its_type(
        tmp_path: Path, mtd_root: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """Only an InputError costs one image; a bug or a model problem stops the run, as it always did."""
    class Failing(BrightnessRunner):
        def predict(self, image, context):
            if self.predicts == 2:
                raise error
            return super().predict(image, context)

    monkeypatch.setattr(iapas.pipeline, "make_runner", Failing())
    with pytest.raises(type(error)) as caught:
        run_evaluation("mtd", mtd_root, tmp_path / "o", cfg(), EvalOptions(eval_size=16, progress=False))
    assert caught.value is error


def test_cli_evaluate_checks_the_engine_flags_before_any_model_loads(tmp_path: Path, mtd_root: Path,
                                                                     runner: BrightnessRunner) -> None:
    from iapas.cli import evaluate

    app = command_app(evaluate)
    base = ["evaluate", "--dataset", "mtd", "--root", str(mtd_root), "--out", str(tmp_path / "o")]
    for extra, msg in ((["--engine", "spark"], "not known"), (["--ray-actors", "2"], "need --engine ray")):
        res = CliRunner().invoke(app, base + extra)
        assert res.exit_code == 2 and msg in res.output
    assert runner.fits == runner.predicts == 0
