"""The offline profile on real textures with drawn defects: finds them, stays quiet on clean ones,
calibrates on normal images only, keeps thin defects on elongated strips, and reloads identically."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import average_precision_score


from iapas.config import build_config
from iapas.context import Context
from iapas.data.synthetic import draw_defect, load_texture, make_category
from iapas.io.images import LoadedImage, load_image
from iapas.pipeline import Pipeline
from iapas.settings import resolve
from iapas.profiles.offline import OfflineProfile
from iapas.stages.reference import embed, finish_map, prepare

SIZE = 96
FINE = [2, 3, 4]  # stride 8/16 stages: 96 px crops and 2 px lines need finer features than the default (5, 6)


def loaded(rgb: np.ndarray, name: str = "mem.png") -> LoadedImage:
    rgb = np.repeat(rgb[..., None], 3, axis=2) if rgb.ndim == 2 else rgb
    return LoadedImage(path=name, rgb=rgb, original_size=(rgb.shape[1], rgb.shape[0]))


@pytest.fixture(scope="module")
def brick(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("syn")
    cat = make_category(root, "brick", n_normal=6, n_test=8, size=(SIZE, SIZE), anomalous_fraction=0.75, seed=3)
    config = build_config(profile="offline", num_normal=6, feature_size=128, reference_stages=FINE, kind="texture",
                          refine="none", threads=1)  # one thread: no wait on a busy core
    pipe = Pipeline(config)
    ctx = pipe.fit(cat.root / "normal")
    return cat, pipe, ctx


@pytest.mark.slow
def test_finds_drawn_defects_far_above_chance(brick) -> None:
    cat, pipe, ctx = brick
    scores, truth = [], []
    for img, mask, kind in zip(cat.test, cat.masks, cat.defects):
        pred = pipe.predict_one(img, ctx)
        assert pred.profile == "offline" and 0.0 <= pred.score_map.min() and pred.score_map.max() < 1.0
        scores.append(pred.score_map.ravel())
        truth.append(load_image(mask).rgb[..., 0].ravel() > 0)
    y, s = np.concatenate(truth), np.concatenate(scores)
    prevalence = y.mean()
    assert prevalence < 0.05
    assert average_precision_score(y, s) > 0.5, "pixel AP should be far above the prevalence"


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_defect_yields_a_box_on_it_and_clean_image_flags_nothing_large(brick) -> None:
    cat, pipe, ctx = brick
    i = cat.defects.index("hole")
    pred = pipe.predict_one(cat.test[i], ctx)
    gt = load_image(cat.masks[i]).rgb[..., 0] > 0
    ys, xs = np.nonzero(gt)
    cy, cx = ys.mean(), xs.mean()
    assert len(pred.boxes) > 0 and pred.boxes.box(0).phrase.endswith(" region")  # a description, not a word
    assert any("not a detector's word" in n for n in pred.notes)
    assert any(b.xyxy[0] <= cx <= b.xyxy[2] and b.xyxy[1] <= cy <= b.xyxy[3] for b in pred.boxes)
    clean = pipe.predict_one(cat.test[cat.defects.index("good")], ctx)
    assert clean.mask.mean() < 0.02
    assert all(b.area < 0.02 * SIZE * SIZE for b in clean.boxes)
    assert clean.image_score < pred.image_score


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_mask_threshold_comes_from_normal_images_only(brick, tmp_path: Path) -> None:
    cat, pipe, ctx = brick
    # Oracle, independent of raw_map's nearest-neighbour code: each normal image's patch features against
    # the bank rows of the OTHER normal images, brute-force float64 Euclidean distances (scipy cdist),
    # brought to image size as every map is; then the median over the images of each map's percentile.
    prof = OfflineProfile(resolve(ctx.config))
    bank = prof.bank_of(ctx)
    bb = prof.backbone(bank.settings.backbone)
    normals = [load_image(p).rgb for p in ctx.normal_images]
    maps = []
    for i, rgb in enumerate(normals):
        q, grid = embed(bb, prepare(rgb, bank.settings), bank.settings)
        others = bank.features[bank.source != i].astype(np.float64)
        assert 0 < len(others) < len(bank.features), "leave-one-out leaves this image's own rows out"
        nearest = cdist(q.numpy().astype(np.float64), others).min(axis=1).reshape(grid)
        maps.append(finish_map(nearest, rgb, bank.settings))
    expected = np.median([np.percentile(m, ctx.config.mask_percentile) for m in maps])
    assert ctx.reference.calibration.threshold == pytest.approx(expected, rel=1e-4)  # float32 kNN vs float64
    floor = np.median([np.percentile(m, 90.0) for m in maps])
    assert ctx.reference.calibration.floor == pytest.approx(floor, rel=1e-4) and floor < expected
    # Different test images (none at all, or other ones) do not move it: fit never sees them.
    import shutil

    copy = shutil.copytree(cat.root, tmp_path / "copy")
    shutil.rmtree(copy / "test")
    again = Pipeline(ctx.config).fit(copy / "normal")
    assert again.reference.calibration.threshold == pytest.approx(ctx.reference.calibration.threshold, rel=1e-6)


@pytest.mark.slow
def test_elongated_strip_keeps_a_thin_line_defect() -> None:
    """A 64x400 strip is fed at 128x800 (aspect kept), so a 2 px line stays 4 px wide for the network."""
    tex = load_texture("brick")
    rng = np.random.default_rng(5)
    normals = []
    for _ in range(5):
        y, x = int(rng.integers(0, 112)), int(rng.integers(0, 448))
        normals.append(loaded(tex[y : y + 400, x : x + 64].copy()))
    test = tex[100:500, 300:364].copy()
    mask = np.zeros(test.shape, dtype=bool)
    mask[60:340, 31:33] = True  # a 2 px wide, 280 px long dark line along the strip
    test[mask] = 0
    prof = OfflineProfile(resolve(build_config(profile="offline", num_normal=5, feature_size=128, reference_stages=FINE)))
    ctx = prof.fit(normals)
    pred = prof.predict(loaded(test), ctx)
    assert pred.score_map.shape == (400, 64)
    assert average_precision_score(mask.ravel(), pred.score_map.ravel()) > 0.1  # prevalence 0.022
    # the line stands above the pixel threshold (score 0.5); whether the part is a defect is the verdict's call
    assert (pred.score_map[mask] >= 0.5).mean() > 0.1, "part of the line must stand out"
    from iapas.stages.regions import mask_regions

    regions, _ = mask_regions(pred.score_map, pred.score_map >= 0.5)
    assert any(b.xyxy[0] <= 32 <= b.xyxy[2] and 60 <= b.xyxy[1] < 340 for b in regions)


def test_saved_bank_reloads_to_identical_maps(brick, tmp_path: Path) -> None:
    cat, pipe, ctx = brick
    path = ctx.save(tmp_path / "context.json")
    assert (tmp_path / "context.bank.npz").is_file()
    back = Context.load(path)
    assert back.profile == "offline"
    img = make_category(tmp_path / "more", "brick", n_normal=1, n_test=1, size=(SIZE, SIZE), seed=9).test[0]
    # both through a Pipeline: it sets the thread count (--threads), and float sums differ in the last bit
    # between thread counts
    a = Pipeline(ctx.config).predict_one(load_image(img), ctx)
    b = Pipeline(back.config).predict_one(img, back)
    np.testing.assert_array_equal(a.score_map, b.score_map)
    np.testing.assert_array_equal(a.mask, b.mask)


def test_drawn_defects_have_exact_masks() -> None:
    tex = load_texture("grass")[:80, :80]
    for kind in ("scratch", "spot", "hole", "cut", "stain"):
        img, mask = draw_defect(tex, kind, np.random.default_rng(0))
        assert mask.any()
        np.testing.assert_array_equal(img[~mask], tex[~mask])  # nothing changes outside the mask
        assert (img[mask] != tex[mask]).mean() > 0.5
