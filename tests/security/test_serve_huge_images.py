"""Huge uploads are scored at `--map-pixels` and answered in the loaded image's frame; smaller ones are not
touched (same answer, byte for byte, as a server that never scales)."""
from __future__ import annotations

import base64
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_support import app_client

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason="no serve extra")

# the MeanDiff line of serve_support is fitted on greys 60..80: a white square on grey 70 is its defect
BACKGROUND, DEFECT = 70, 255


def part_png(width: int, height: int, square: tuple[int, int, int, int], fmt: str = "PNG", **save: object) -> bytes:
    """A grey part of `width` x `height` with one white rectangle `square` = (x0, y0, x1, y1); compresses small."""
    arr = np.full((height, width, 3), BACKGROUND, np.uint8)
    x0, y0, x1, y1 = square
    arr[y0:y1, x0:x1] = DEFECT
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **save)
    return buf.getvalue()


def scored_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Records the (width, height) of every uploaded image the model worker scores (not the warm-up's)."""
    from fake_profile import MeanDiffProfile

    seen: list[tuple[int, int]] = []
    real = MeanDiffProfile.predict

    def recording(self, image, context):
        if image.path != "warm-up":
            seen.append(image.size)
        return real(self, image, context)

    monkeypatch.setattr(MeanDiffProfile, "predict", recording)
    return seen


def inspect(client, data: bytes, name: str = "part.png", query: str = "mask=png") -> dict:
    res = client.post(f"/v1/inspect?line=tile&{query}", files={"file": (name, data)})
    assert res.status_code == 200, res.text
    return res.json()


def overlay_size(body: dict) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(body["overlay"]["data"]))).size


def without_timing(body: dict) -> str:
    return json.dumps({k: v for k, v in body.items() if k != "timing"}, sort_keys=True)


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_huge_png_is_scored_small_and_answered_in_the_loaded_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """6000 x 6000 (loads as 4096 x 4096 = 16.8 Mpx): scored at <= 8 Mpx, answered at 4096 x 4096."""
    from iapas.io.images import load_image
    from iapas.serve.answers import decode_mask

    square = (1500, 3000, 2700, 3600)  # in the file's 6000 px frame
    data = part_png(6000, 6000, square)
    path = tmp_path / "huge.png"
    path.write_bytes(data)
    frame = load_image(path).size  # the size `iapas segment` gives the same file
    assert frame == (4096, 4096)
    seen = scored_sizes(monkeypatch)
    with app_client(tmp_path, monkeypatch) as client:  # the default --map-pixels
        body = inspect(client, data, query="mask=png&overlay=true")
    assert len(seen) == 1 and seen[0][0] * seen[0][1] <= 8_000_000 and seen[0][0] < 4096  # the low-memory path
    assert body["size"] == [4096, 4096] and body["original_size"] == [6000, 6000]
    expected = [round(v * 4096 / 6000) for v in square]  # the square in the answer's frame
    assert body["verdict"] == "defect" and len(body["regions"]) == 1
    region = body["regions"][0]
    assert all(abs(a - b) <= 2 for a, b in zip(region["bbox"], expected)), (region["bbox"], expected)
    assert all(abs(a - b) <= 2 for a, b in zip(body["boxes"][0]["xyxy"], expected)), body["boxes"]
    true_area = (expected[2] - expected[0]) * (expected[3] - expected[1])
    assert abs(region["area"] - true_area) / true_area < 0.01
    assert region["fraction"] == round(region["area"] / 4096**2, 6)
    mask = decode_mask(body["mask"])
    assert mask.shape == (4096, 4096) and int(mask.sum()) == region["area"] == body["defect_area"]
    assert body["largest_region_area"] == region["area"]
    assert max(overlay_size(body)) <= 2000  # a display-size picture, as for any large image
    note = " ".join(body["notes"])
    assert f"scored at {seen[0][0]}x{seen[0][1]}" in note and "downscaled from 6000x6000 to 4096x4096" in note
    assert "score map and boxes are at the downscaled size" not in note  # the loader's own note is replaced


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_scaled_answer_matches_the_full_size_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3000 x 2000 part scored at 0.5 Mpx gives the regions, boxes and mask of the full-size answer, up to a
    pixel at the edges."""
    from iapas.serve.answers import decode_mask

    data = part_png(3000, 2000, (700, 900, 1300, 1250))
    seen = scored_sizes(monkeypatch)
    with app_client(tmp_path, monkeypatch, map_pixels=500_000) as client:
        small = inspect(client, data, query="mask=png&overlay=true")
    with app_client(tmp_path, monkeypatch, map_pixels=None) as client:
        full = inspect(client, data, query="mask=png&overlay=true")
    assert seen[0][0] * seen[0][1] <= 500_000 and seen[1] == (3000, 2000)
    assert small["size"] == full["size"] == [3000, 2000]
    assert small["verdict"] == full["verdict"] == "defect"
    assert all(abs(a - b) <= 3 for a, b in zip(small["regions"][0]["bbox"], full["regions"][0]["bbox"]))
    assert all(abs(a - b) <= 3 for a, b in zip(small["boxes"][0]["xyxy"], full["boxes"][0]["xyxy"]))
    a, b = decode_mask(small["mask"]), decode_mask(full["mask"])
    assert a.shape == b.shape == (2000, 3000)
    assert (a ^ b).sum() / b.sum() < 0.02  # differs only along the region's border
    assert abs(small["image_score"] - full["image_score"]) < 0.01
    # the overlay gets the display size of the answer's frame (within a pixel of rounding)
    assert all(abs(a - b) <= 1 for a, b in zip(overlay_size(small), overlay_size(full)))


def test_exif_rotated_huge_jpeg_is_answered_upright(tmp_path: Path) -> None:
    """The scaled frame follows EXIF orientation exactly as `load_image` does (width and height swapped)."""
    from iapas.io.images import load_image
    from iapas.serve.answers import ScaledImage, decode_upload, enlarged_mask

    exif = Image.Exif()
    exif[0x0112] = 6
    data = part_png(3000, 2000, (100, 100, 400, 300), fmt="JPEG", exif=exif.tobytes(), quality=90)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data)
    full = load_image(path)
    decoded = decode_upload(data, "rotated.jpg", 50_000_000, map_pixels=1_000_000)
    assert isinstance(decoded, ScaledImage)
    assert decoded.frame == full.size == (2000, 3000) and decoded.original_size == full.original_size
    assert decoded.size[0] < decoded.size[1] and decoded.size[0] * decoded.size[1] <= 1_000_000
    assert "rotated upright per EXIF orientation 6" in decoded.note
    mask = np.zeros(decoded.rgb.shape[:2], bool)
    mask[5:9, 3:4] = True
    big = enlarged_mask(mask, decoded.frame)
    assert big.shape == (3000, 2000)


def test_images_within_map_pixels_are_answered_exactly_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At or below --map-pixels nothing changes: the same decode and byte-identical answers (mask, overlay)."""
    from iapas.io.images import LoadedImage, load_image
    from iapas.serve.answers import ScaledImage, decode_upload

    data = part_png(400, 250, (50, 60, 120, 140))
    path = tmp_path / "part.png"
    path.write_bytes(data)
    at_limit = decode_upload(data, "part.png", 50_000_000, map_pixels=400 * 250)
    assert type(at_limit) is LoadedImage and np.array_equal(at_limit.rgb, load_image(path).rgb)
    assert isinstance(decode_upload(data, "part.png", 50_000_000, map_pixels=400 * 250 - 1), ScaledImage)
    seen = scored_sizes(monkeypatch)
    query = "mask=png&overlay=true"
    with app_client(tmp_path, monkeypatch, map_pixels=400 * 250) as client:
        limited = [inspect(client, data, query=query), inspect(client, data, query="mask=rle")]
    with app_client(tmp_path, monkeypatch, map_pixels=None) as client:
        never = [inspect(client, data, query=query), inspect(client, data, query="mask=rle")]
    assert seen == [(400, 250)] * 4
    assert [without_timing(b) for b in limited] == [without_timing(b) for b in never]


def test_working_side_keeps_within_map_pixels() -> None:
    from iapas.serve.answers import fit_size, working_side

    assert working_side((4000, 2000), 8_000_000) is None  # 8 Mpx exactly: kept
    assert working_side((9000, 9000), 20_000_000) is None  # loads as 4096 x 4096 = 16.8 Mpx: kept
    for size, limit in (((7071, 7071), 8_000_000), ((4001, 2000), 8_000_000), ((30000, 300), 100_000),
                        ((5000, 4000), 1_234_567)):
        side = working_side(size, limit)
        assert side is not None
        w, h = fit_size(size, side)
        assert w * h <= limit
        w2, h2 = fit_size(size, side + 1)
        assert w2 * h2 > limit or (w2, h2) == (w, h)  # the largest side that fits
