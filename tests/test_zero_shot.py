"""Zero-shot mode (no normal image): mutual scoring finds drawn defects on a synthetic texture batch,
the `folder` dataset takes a root without a normal folder, `iapas run` without --normal works and every
output says which mode made it; chunks bound the batch."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from iapas.cli import evaluate as evaluate_cmd
from iapas.cli import run as run_cmd
from iapas.config import build_config
from iapas.data.synthetic import make_category
from iapas.errors import SettingsError
from iapas.evaluation.harness import EvalOptions, run_evaluation
from iapas.io.images import load_image
from iapas.pipeline import Pipeline
from iapas.stages.mutual import MutualSettings, chunks, mutual_distance, mutual_scores, reference_pool
from cli_apps import command_app

SIZE = 112
FAST = {"feature_size": 128, "reference_stages": [2, 3], "refine": "none"}


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory):
    """A brick batch of 12 test images, 4 with drawn defects, and no normal folder at all."""
    root = tmp_path_factory.mktemp("zs")
    cat = make_category(root, "brick", n_normal=0, n_test=12, size=(SIZE, SIZE), anomalous_fraction=1 / 3, seed=5)
    assert not (cat.root / "normal").exists()
    return cat


def test_mutual_distance_keeps_the_closest_references_only() -> None:
    q = torch.zeros(2, 3)
    near = torch.zeros(4, 3)
    far = torch.full((4, 3), 10.0)
    # 3 of 4 references hold the query's patch; the defective one is ignored by the 30% statistic
    d = mutual_distance(q, [near, near, near, far], keep_fraction=0.3)
    assert torch.allclose(d, torch.zeros(2))
    d_all = mutual_distance(q, [near, near, near, far], keep_fraction=1.0)
    assert float(d_all[0]) == pytest.approx(np.sqrt(300) / 4, rel=1e-5)


def test_chunks_cover_every_image_once_and_bound_the_size() -> None:
    parts = chunks(130, 64)
    assert [i for p in parts for i in p] == list(range(130))
    assert max(len(p) for p in parts) <= 64 and min(len(p) for p in parts) >= 2
    # the reference pool spans the whole batch: a batch sorted by defect type gives references of every type
    pool = reference_pool(1000, 24)
    assert len(pool) == 48 and pool[0] == 0 and pool[-1] == 999
    assert reference_pool(7, 24) == list(range(7))
    seen = []
    feats = {i: (torch.randn(4, 3, generator=torch.Generator().manual_seed(i)), (2, 2)) for i in range(7)}
    for i, grid in mutual_scores(7, lambda i: feats[i], MutualSettings(references=3, chunk=3)):
        seen.append(i)
        assert grid.shape == (2, 2) and np.isfinite(grid).all()
    assert seen == list(range(7))


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_zero_shot_finds_the_drawn_defects(batch) -> None:
    pipe = Pipeline(build_config(profile="offline", kind="texture", **FAST))
    ctx = pipe.fit_zero_shot(batch.test)
    assert ctx.reference.mode == "zero-shot" and ctx.normal_images == []
    inside, outside, hits = [], [], 0
    n_bad = 0
    for img, mask_path, kind in zip(batch.test, batch.masks, batch.defects):
        pred = pipe.predict_one(img, ctx)
        assert pred.score_map.shape == (SIZE, SIZE) and 0.0 <= pred.score_map.min() and pred.score_map.max() < 1.0
        assert any("zero-shot" in n for n in pred.notes)
        if kind == "good":
            continue
        n_bad += 1
        gt = load_image(mask_path).rgb[..., 0] > 0
        inside.append(float(pred.score_map[gt].mean()))
        outside.append(float(pred.score_map[~gt].mean()))
        y, x = np.unravel_index(int(np.argmax(pred.score_map)), gt.shape)
        near = gt[max(0, y - 8): y + 9, max(0, x - 8): x + 9].any()  # the map's peak is on the defect
        hits += int(near)
    assert n_bad == 4
    assert all(i > 2 * o for i, o in zip(inside, outside)), (inside, outside)
    assert hits >= 3


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_folder_without_normal_images_evaluates_zero_shot_only(batch, tmp_path: Path) -> None:
    cfg = build_config(profile="offline", kind="texture", **FAST)
    with pytest.raises(SettingsError, match="zero-shot"):
        run_evaluation("folder", batch.root, tmp_path / "few", cfg, EvalOptions(progress=False))
    m = run_evaluation("folder", batch.root, tmp_path / "zs", cfg, EvalOptions(progress=False, zero_shot=True))
    assert m["mode"] == "zero-shot"
    assert m["mean"]["pixel_auroc"] > 0.9 and m["categories"]["brick"]["n_images"] == 12
    saved = json.loads((tmp_path / "zs" / "metrics.json").read_text())
    assert saved["mode"] == "zero-shot" and "no normal image" in saved["mode_note"]


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_run_without_normal_is_zero_shot_and_says_so(batch, tmp_path: Path) -> None:
    app = command_app(run_cmd, evaluate_cmd)
    out = tmp_path / "out"
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("feature_size: 128\nreference_stages: [2, 3]\n")
    args = ["run", "--images", str(batch.root / "test"), "--out", str(out), "--kind", "texture",
            "--config", str(cfg), "--refine", "none", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "zero-shot" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "zero-shot" and summary["status_counts"] == {"ok": 12}
    one = json.loads((out / "test_000.json").read_text())
    assert any("zero-shot" in n for n in one["notes"])
    ctx = json.loads((out / "context.json").read_text())
    assert ctx["reference"]["mode"] == "zero-shot" and len(ctx["reference"]["batch"]) == 12


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_evaluate_zero_shot_flag_on_a_folder_without_normal_images(batch, tmp_path: Path) -> None:
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("feature_size: 128\nreference_stages: [2, 3]\nrefine: none\n")
    app = command_app(run_cmd, evaluate_cmd)
    base = ["evaluate", "--dataset", "folder", "--root", str(batch.root), "--config", str(cfg), "--kind", "texture"]
    refused = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "few")])
    assert refused.exit_code == 2 and "zero-shot" in " ".join(refused.output.split())
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "zs"), "--zero-shot"])
    assert result.exit_code == 0, result.output
    assert "mode: zero-shot" in result.output
    assert json.loads((tmp_path / "zs" / "metrics.json").read_text())["mode"] == "zero-shot"


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_chunk_size_bounds_memory_but_never_changes_a_score(batch) -> None:
    whole = Pipeline(build_config(profile="offline", kind="texture", **FAST))
    small = Pipeline(build_config(profile="offline", kind="texture", zero_shot_chunk=3, zero_shot_references=4, **FAST))
    small_refs = Pipeline(build_config(profile="offline", kind="texture", zero_shot_references=4, **FAST))
    ctx_s, ctx_r = small.fit_zero_shot(batch.test), small_refs.fit_zero_shot(batch.test)
    assert ctx_s.reference.mutual.chunk == 3
    for img in batch.test[::5]:
        np.testing.assert_allclose(small.predict_one(img, ctx_s).score_map, small_refs.predict_one(img, ctx_r).score_map,
                                   rtol=1e-5, atol=1e-6)
    assert whole.fit_zero_shot(batch.test).reference.mutual.chunk == 128


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_each_image_of_the_batch_is_read_once(batch, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stage 1 reads the reference pool once; Stage 2 scores each image from the copy its caller loaded, reading
    no other image of the batch (and no mutable batch state lives in the few-shot profile)."""
    import iapas.pipeline
    import iapas.profiles.zero_shot
    from iapas.profiles.offline import OfflineProfile
    from iapas.profiles.zero_shot import ZeroShotRunner

    reads: list[str] = []

    def counted(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(Path(path).name)
        return load_image(path, *args, **kwargs)

    monkeypatch.setattr(iapas.pipeline, "load_image", counted)
    monkeypatch.setattr(iapas.profiles.zero_shot, "load_image", counted)
    pipe = Pipeline(build_config(profile="offline", kind="texture", zero_shot_references=3, **FAST))
    ctx = pipe.fit_zero_shot(batch.test)
    pool = reference_pool(len(batch.test), 3)
    assert sorted(reads) == sorted(Path(batch.test[i]).name for i in pool)  # the pool, once
    reads.clear()
    images = [load_image(p) for p in batch.test]  # the caller's one read of each image
    preds = [pipe.predict_one(im, ctx) for im in images]
    assert reads == [] and len(preds) == len(batch.test)  # nothing read again while scoring
    assert isinstance(pipe.batch_runner, ZeroShotRunner) and not hasattr(OfflineProfile(pipe.runner.settings), "_batch")
