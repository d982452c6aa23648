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


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
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


def test_anchored_scale_leaves_scores_below_the_threshold_untouched_and_turns_red_above_top() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(60, 200, (300, 400, 1)).repeat(3, axis=2).astype(np.uint8)
    score = np.full((300, 400), 0.46, np.float32)  # an offline map of clean surface: just under 0.5
    score[100:160, 100:180] = 0.58  # above the threshold, below top
    score[120:140, 120:160] = 0.8  # far above: full red
    pred = Prediction(path="a.png", score_map=score, mask=score >= 0.5, boxes=[], image_score=0.8, profile="offline")
    out = render_overlay(base, pred, scale=(0.5, 2 / 3))
    pic = _picture(out).astype(int)
    clean = np.ones((300, 400), bool)
    clean[95:165, 95:185] = False  # the mask outline sits on the region's edge
    assert np.array_equal(pic[clean], base[clean].astype(int))
    core = pic[125:135, 125:155]
    assert (core[..., 0] > 180).all() and (core[..., 1] < 100).all() and (core[..., 2] < 100).all()
    mid = pic[105:115, 105:115]  # between threshold and top: orange-yellow, not red
    assert (mid[..., 1] > mid[..., 2] + 20).all()


def test_every_overlay_has_a_legend_naming_what_is_drawn() -> None:
    kept = Box((200.0, 150.0, 300.0, 250.0), "scratch", 0.77)
    removed = Box((20.0, 150.0, 180.0, 280.0), "abnormal", 0.31, removed_by="size_filter")
    plain = render_overlay(_grey(400, 300), _prediction(400, 300), scale=(0.5, 0.7))
    full = render_overlay(_grey(400, 300), _prediction(400, 300, boxes=[kept], removed=[removed]), scale=(0.5, 0.7),
                          gt_mask=np.zeros((300, 400), bool))
    for out, rows in ((plain, 3), (full, 5)):
        x, y, w, h = out.info["image_box"]
        legend = np.asarray(out)[y + h:]
        assert legend.shape[0] > 10 * rows  # one text line per item at this width, at least
        assert _is(legend, d.KEPT_COLOUR).any()  # the box swatch
        assert _is(legend, d.ANCHOR_HIGH, tol=40).any()  # the yellow-to-red ramp
    assert np.asarray(full).shape[0] - sum(full.info["image_box"][1::2]) > np.asarray(plain).shape[0] - sum(plain.info["image_box"][1::2])


def test_labels_of_overlapping_boxes_do_not_collide() -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (400, 300))
    draw = ImageDraw.Draw(img)
    taken: list = []
    fnt = d.font(14)
    rects = [d.label(draw, (100 + i * 3, 100 + i * 2), f"anomaly 0.{50 + i}", fnt, bg=d.KEPT_COLOUR, bounds=(400, 300),
                     taken=taken, bottom=150) for i in range(6)]
    for i, a in enumerate(rects):
        assert 0 <= a[0] and a[2] <= 400 and 0 <= a[1] and a[3] <= 300
        for b in rects[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


@pytest.mark.parametrize("size", [(30, 400), (400, 30)])
def test_header_of_a_narrow_image_wraps_instead_of_being_cut(size: tuple[int, int]) -> None:
    w, h = size
    pred = Prediction(path="/plant/line3/camera_left/lot_2024_11_29/part_000123_long_name.png",
                      score_map=np.zeros((h, w), np.float32), mask=np.zeros((h, w), bool), boxes=[],
                      image_score=0.123, profile="offline")
    out = render_overlay(_grey(w, h), pred, scale=(0.5, 0.7))
    arr = np.asarray(out).astype(int)
    head = arr[: out.info["image_box"][1]]
    assert out.width >= 360  # a readable canvas even for a strip
    text = np.abs(head - np.array(d.HEADER_BG)).sum(axis=-1) > 120
    cols = np.nonzero(text.any(axis=0))[0]
    assert cols.max() < out.width - 4  # nothing runs off the right edge
    rows = np.nonzero(text.any(axis=1))[0]
    assert rows.max() - rows.min() > 20  # wrapped onto a second line: score and profile are kept


def _many_regions(w: int, h: int, n: int) -> Prediction:
    """A small tile with `n` scattered regions, some touching, as the offline profile finds on MTD."""
    rng = np.random.default_rng(3)
    score = np.zeros((h, w), np.float32)
    boxes = []
    for i in range(n):
        x0, y0 = int(rng.integers(0, w - 12)), int(rng.integers(0, h - 12))
        bw, bh = int(rng.integers(4, 12)), int(rng.integers(4, 12))
        score[y0:y0 + bh, x0:x0 + bw] = 0.6 + 0.3 * i / n
        boxes.append(Box((float(x0), float(y0), float(x0 + bw), float(y0 + bh)), "darker compact small region",
                         0.6 + 0.3 * i / n))
    return Prediction(path="tile.png", score_map=score, mask=score >= 0.5, boxes=boxes, image_score=float(score.max()),
                      profile="offline")


def test_labels_on_a_small_tile_are_capped_and_leave_the_part_visible() -> None:
    from iapas.outputs.overlay import MAX_LABELS

    pred = _many_regions(116, 290, 17)
    rgb = np.random.default_rng(0).integers(40, 90, (290, 116, 3), dtype=np.uint8)
    out = render_overlay(rgb, pred, scale=(0.5, 0.7))
    assert 1 <= out.info["tags"] <= MAX_LABELS
    picture = _picture(out)
    tag_fill = _is(picture, d.KEPT_COLOUR, tol=0).mean()
    assert tag_fill < 0.10, f"tags and boxes cover {tag_fill:.0%} of the picture"
    assert (picture == rgb_at(rgb, picture.shape)).all(axis=-1).mean() > 0.5  # most of the part shows as it is


def rgb_at(rgb: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The input resized like the overlay's picture (bilinear, as the overlay does)."""
    return d.resize_rgb(rgb, (shape[1], shape[0]))


def test_touching_boxes_share_one_label() -> None:
    from iapas.outputs.overlay import label_groups

    rects = [(0, 0, 10, 10), (12, 0, 20, 8), (100, 100, 110, 110), (9, 9, 15, 15)]
    assert label_groups(rects, gap=4) == [[0, 1, 3], [2]]
    assert label_groups(rects, gap=0) == [[0, 3], [1], [2]]
