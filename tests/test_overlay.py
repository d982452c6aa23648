"""Per-image overlay: sizes, heat colours, kept/removed/object boxes, colour bar, odd shapes."""
from __future__ import annotations

import numpy as np
import pytest

from iapas.outputs import drawing as d
from iapas.outputs.overlay import render_overlay
from iapas.types import Box, Prediction


def _prediction(w: int, h: int, boxes=(), removed=(), obj=None) -> Prediction:
    yy, xx = np.mgrid[:h, :w]
    score = np.exp(-(((yy - h * 0.3) / (h * 0.08)) ** 2 + ((xx - w * 0.3) / (w * 0.08)) ** 2)).astype(np.float32)
    return Prediction(path="/lot7/cam2/part_0042.png", score_map=score, mask=score > 0.5, boxes=list(boxes),
                      image_score=float(score.max()), profile="offline", removed_boxes=list(removed), object_box=obj)


def _grey(w: int, h: int) -> np.ndarray:
    return np.full((h, w, 3), 128, np.uint8)


def _layout(img_w: int, img_h: int, out) -> tuple[int, int, float]:
    """(top of the picture, drawn image width, scale) of an overlay for an input of img_w x img_h."""
    x, y, w, h = out.info["image_box"]
    assert (w, h) == d.fit_size(img_w, img_h) and x == 0
    return y, w, w / img_w


def _picture(out) -> np.ndarray:
    """The picture part of an overlay (no header, colour bar or legend)."""
    x, y, w, h = out.info["image_box"]
    return np.asarray(out)[y:y + h, x:x + w]


def _is(px: np.ndarray, colour: tuple[int, int, int], tol: int = 10) -> np.ndarray:
    return np.all(np.abs(px.astype(int) - np.array(colour)) <= tol, axis=-1)


def test_small_images_are_scaled_up_and_big_ones_capped() -> None:
    small = render_overlay(_grey(64, 48), _prediction(64, 48))
    big = render_overlay(_grey(3000, 2000), _prediction(3000, 2000))
    _, ws, _ = _layout(64, 48, small)
    _, wb, _ = _layout(3000, 2000, big)
    assert ws == 384 and small.width > 384  # image plus colour bar
    assert wb == 1600 and big.width < 1800 and big.height < 1200


def test_jet_heat_is_hot_on_the_defect_and_cold_elsewhere() -> None:
    pred = _prediction(400, 300)
    out = render_overlay(_grey(400, 300), pred)
    arr = np.asarray(out)
    head, _, s = _layout(400, 300, out)
    hot = arr[head + int(90 * s), int(120 * s)].astype(int)  # peak of the blob
    cold = arr[head + int(270 * s), int(370 * s)].astype(int)
    assert hot[0] > hot[2] + 80  # red over blue
    assert cold[2] > cold[0]  # blue over red


def test_kept_boxes_solid_removed_boxes_dashed_grey() -> None:
    kept = Box((200.0, 150.0, 300.0, 250.0), "scratch", 0.77)
    removed = Box((20.0, 150.0, 180.0, 280.0), "abnormal", 0.31, removed_by="size_filter")
    pred = _prediction(400, 300, boxes=[kept], removed=[removed])
    out = render_overlay(_grey(400, 300), pred)
    arr = np.asarray(out)
    head = out.info["image_box"][1]
    # kept: continuous magenta left edge over its whole height
    left = arr[head + 160: head + 245, 200]
    assert _is(left, d.KEPT_COLOUR).all()
    # removed: grey dashes with gaps along its bottom edge
    bottom = _is(arr[head + 280, 25:175], d.REMOVED_COLOUR, tol=20)
    assert 0.25 < bottom.mean() < 0.8
    # no magenta outside the kept box and its label
    magenta = _is(arr[head:head + 300, :400], d.KEPT_COLOUR)
    ys, xs = np.nonzero(magenta)
    assert xs.min() >= 198 and ys.max() <= 252


def test_no_boxes_means_no_box_colours() -> None:
    assert not _is(_picture(render_overlay(_grey(400, 300), _prediction(400, 300))), d.KEPT_COLOUR).any()


def test_object_box_and_ground_truth_outline() -> None:
    gt = np.zeros((300, 400), bool)
    gt[50:120, 60:180] = True
    obj = Box((10.0, 10.0, 390.0, 290.0), "magnetic tile", 0.9)
    out = render_overlay(_grey(400, 300), _prediction(400, 300, obj=obj), gt_mask=gt)
    arr = np.asarray(out)
    head = out.info["image_box"][1]
    assert _is(arr[head + 50: head + 120, 60], d.GT_COLOUR).mean() > 0.9
    white_dots = _is(arr[head + 10, 20:380], d.OBJECT_COLOUR, tol=5)
    assert 0.2 < white_dots.mean() < 0.9  # dotted, thin


def test_jet_colour_bar_runs_from_red_at_top_to_blue_at_bottom() -> None:
    out = render_overlay(_grey(400, 300), _prediction(400, 300), threshold=0.5)
    arr = np.asarray(out).astype(int)
    head = out.info["image_box"][1]
    col = arr[head + 20: head + 300 - 20, 400 + 12]
    assert col[0][0] > 100 and col[0][2] < 60  # top: dark red
    assert col[-1][2] > 100 and col[-1][0] < 60  # bottom: dark blue


def test_threshold_outlines_the_region_above_it() -> None:
    pred = _prediction(400, 300)
    pred.mask = np.zeros_like(pred.mask)
    no_thr = np.asarray(render_overlay(_grey(400, 300), pred))
    thr = np.asarray(render_overlay(_grey(400, 300), pred, threshold=0.5))
    white = lambda a: _is(a[30:, :400], d.PRED_OUTLINE_COLOUR, tol=3).sum()  # noqa: E731
    assert white(thr) > white(no_thr) + 50


def test_raw_scores_use_the_given_range() -> None:
    pred = _prediction(400, 300)
    pred.score_map = pred.score_map * 40.0  # raw, unnormalised scores
    clipped = _picture(render_overlay(_grey(400, 300), pred)).astype(int)
    ranged = _picture(render_overlay(_grey(400, 300), pred, vrange=(0.0, 40.0))).astype(int)
    edge = (90, 160)  # blob flank: saturates without the range
    assert clipped[edge][0] > ranged[edge][0] + 30


@pytest.mark.parametrize("size", [(300, 8), (8, 300), (8, 8), (10, 3000)])
def test_extreme_aspect_ratios_render(size: tuple[int, int]) -> None:
    """Thin strips and tiny images still get a full overlay with a colour bar (no drawing errors)."""
    w, h = size
    rng = np.random.default_rng(1)
    pred = Prediction(path="strip.png", score_map=rng.random((h, w)).astype(np.float32), mask=np.zeros((h, w), bool),
                      boxes=[Box((0, 0, w / 2, h / 2), "scratch", 0.7)], image_score=0.9, profile="offline")
    out = render_overlay(_grey(w, h), pred)
    dw, dh = d.fit_size(w, h)
    assert out.width > dw and out.height >= dh  # image plus colour bar beside it
