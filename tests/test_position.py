"""The position-aware reference: same-position search, the alignment decision from the normal images, and
on a drawn aligned board (moved, missing, swapped, doubled parts) far better maps than the global bank,
in few-shot and zero-shot mode; on a texture the decision falls back to the global bank."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from iapas.config import build_config
from iapas.context import Context
from iapas.data.synthetic_families import make_family
from iapas.io.images import load_image
from iapas.pipeline import Pipeline
from iapas.stages.position import Alignment, combine, decide, position_distance, shifted


def brute_force(query: torch.Tensor, refs: torch.Tensor, window: int) -> torch.Tensor:
    n, h, w, _ = refs.shape
    out = torch.full((n, h, w), float("inf"))
    for k in range(n):
        for y in range(h):
            for x in range(w):
                for yy in range(max(0, y - window), min(h, y + window + 1)):
                    for xx in range(max(0, x - window), min(w, x + window + 1)):
                        d = float(torch.linalg.vector_norm(query[y, x] - refs[k, yy, xx]))
                        out[k, y, x] = min(float(out[k, y, x]), d)
    return out


def test_position_distance_equals_a_brute_force_window_search() -> None:
    gen = torch.Generator().manual_seed(0)
    refs = torch.randn(3, 5, 6, 4, generator=gen)
    query = torch.randn(5, 6, 4, generator=gen)
    for window in (0, 1, 2):
        got = position_distance(query, refs, window)
        assert torch.allclose(got, brute_force(query, refs, window), atol=1e-5)


def test_shift_fills_with_inf_and_moves_values() -> None:
    f = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4, 1)
    s = shifted(f, 1, -1)
    assert float(s[0, 0, 1, 0]) == float(f[0, 1, 0, 0]) and torch.isinf(s[0, 2, :, 0]).all() and torch.isinf(s[0, :, 0, 0]).all()


def test_decision_follows_the_share_of_patches_matched_elsewhere() -> None:
    g = [np.ones((4, 4)) for _ in range(3)]
    same = [np.ones((4, 4)) for _ in range(3)]  # every best match is at the same place
    apart = [np.full((4, 4), 2.0) for _ in range(3)]  # every best match is elsewhere
    a = decide(g, same, 0.35, "auto", (4, 4), (128, 128))
    b = decide(g, apart, 0.35, "auto", (4, 4), (128, 128))
    assert a.aligned and a.ratio == 0.0 and "aligned" in a.rule
    assert not b.aligned and b.ratio == 1.0 and "global bank" in b.rule
    assert decide(g, apart, 0.35, "on", None, None).aligned and not decide(g, same, 0.35, "off", None, None).aligned
    assert Alignment.from_json(a.to_json()) == a
    assert np.array_equal(combine(np.zeros(2), np.ones(2), "mean"), np.full(2, 0.5))


def pixel_ap(pipe: Pipeline, ctx: Context, cat) -> float:  # noqa: ANN001
    scores, truth = [], []
    for img, mask in zip(cat.test, cat.masks):
        scores.append(pipe.predict_one(img, ctx).score_map.ravel())
        truth.append(load_image(mask).rgb[..., 0].ravel() > 0)
    return float(average_precision_score(np.concatenate(truth), np.concatenate(scores)))


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory):
    return make_family(tmp_path_factory.mktemp("fam"), "parts", n_normal=6, n_test=8, seed=1)


@pytest.mark.slow
def test_moved_and_missing_parts_are_found_only_with_positions(board, tmp_path: Path) -> None:
    aps = {}
    for mode in ("auto", "off"):
        pipe = Pipeline(build_config(profile="offline", kind="object", num_normal=6, feature_size=160,
                                     position_reference=mode, threads=1))
        ctx = pipe.fit(board.root / "normal")
        aps[mode] = pixel_ap(pipe, ctx, board)
        if mode == "auto":
            alignment = ctx.reference.get("alignment")
            assert alignment["aligned"] and alignment["ratio"] <= 0.35 and "position_features" in ctx.arrays
            again = Context.load(ctx.save(tmp_path / "context.json"))
            assert again.reference.get("alignment") == alignment
            a = pipe.predict_one(board.test[0], ctx).score_map
            assert np.array_equal(a, pipe.predict_one(board.test[0], again).score_map)
        else:
            assert not ctx.reference.get("alignment")["aligned"] and "position_features" not in ctx.arrays
    assert aps["auto"] > 2 * aps["off"] and aps["auto"] > 0.6, aps


@pytest.mark.slow
def test_texture_falls_back_to_the_global_bank(tmp_path: Path) -> None:
    from iapas.data.synthetic import make_category

    gravel = make_category(tmp_path, "gravel", n_normal=6, n_test=1, size=(160, 160), seed=2)  # random crops
    pipe = Pipeline(build_config(profile="offline", kind="texture", num_normal=6, threads=1))
    ctx = pipe.fit(gravel.root / "normal")
    alignment = ctx.reference.get("alignment")
    assert not alignment["aligned"] and alignment["ratio"] > 0.35 and "position_features" not in ctx.arrays


@pytest.mark.slow
def test_zero_shot_board_uses_the_batch_positions(board) -> None:
    pipe = Pipeline(build_config(profile="offline", kind="object", feature_size=160, threads=1))
    normals = sorted((board.root / "normal").glob("*.png"))
    batch = list(board.test) + normals  # the batch: mostly boards without defects, as on a line
    ctx = pipe.fit_zero_shot(batch)
    scores, truth = [], []
    for img, mask in zip(board.test, board.masks):
        pred = pipe.predict_one(img, ctx)
        scores.append(pred.score_map.ravel())
        truth.append(load_image(mask).rgb[..., 0].ravel() > 0)
    assert ctx.reference.get("alignment")["aligned"]
    assert any(n.startswith("position-aware") for n in pred.notes)
    assert average_precision_score(np.concatenate(truth), np.concatenate(scores)) > 0.6


def test_scales_are_combined_on_their_own_calibration() -> None:
    from iapas.stages.multiscale import combine_scales, excess

    deep = np.array([0.0, 2.0, 4.0, 10.0])
    fine = np.array([5.0, 5.0, 30.0, 5.0])
    assert np.allclose(excess(deep, 2.0, 4.0), [0.0, 0.0, 1.0, 4.0])
    got = combine_scales(deep, fine, (2.0, 4.0), (5.0, 15.0), "max")
    assert np.allclose(got, [0.0, 0.0, 2.5, 4.0])  # each pixel: the scale that finds it more abnormal
    assert np.allclose(combine_scales(deep, fine, (2.0, 4.0), (5.0, 15.0), "sum"), [0.0, 0.0, 3.5, 4.0])


@pytest.mark.slow
def test_fine_scale_bank_is_fitted_stored_and_reloaded(tmp_path: Path) -> None:
    fine = make_family(tmp_path, "fine", n_normal=4, n_test=2, seed=3)
    pipe = Pipeline(build_config(profile="offline", kind="texture", num_normal=4, feature_size=128, threads=1,
                                 position_reference="off", fine_stages=[2, 3]))
    settings = pipe.runner.settings.reference
    assert settings.fine_stages == (2, 3)  # --fine-stages reaches the reference settings
    ctx = pipe.fit(fine.root / "normal")
    scales = ctx.reference.get("scales")
    assert set(scales) == {"deep", "fine"} and "fine_features" in ctx.arrays
    assert ctx.arrays["fine_features"].shape[1] == sum(pipe.runner.backbone(settings.backbone).stage_channels[s]
                                                       for s in settings.fine_stages)
    again = Context.load(ctx.save(tmp_path / "context.json"))
    a = pipe.predict_one(fine.test[0], ctx).score_map
    assert np.array_equal(a, pipe.predict_one(fine.test[0], again).score_map)
