"""Property-based tests of image loading: random pictures in many modes and formats round-trip to the
expected RGB, and no byte string makes the loader fail with anything but an InputError."""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from iapas.errors import InputError
from iapas.io.images import MIN_SIDE, load_image

pytestmark = pytest.mark.slow  # end to end: left out of the `-m "not slow"` loop, run in CI

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sides = st.integers(min_value=MIN_SIDE, max_value=40)


def _load_bytes(data: bytes, suffix: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"x{suffix}"
        p.write_bytes(data)
        return load_image(p).rgb


def _encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


@st.composite
def rgb_images(draw: st.DrawFn) -> np.ndarray:
    h, w = draw(sides), draw(sides)
    return draw(arrays(np.uint8, (h, w, 3)))


@st.composite
def gray_images(draw: st.DrawFn) -> np.ndarray:
    h, w = draw(sides), draw(sides)
    return draw(arrays(np.uint8, (h, w)))


@SETTINGS
@given(rgb_images(), st.sampled_from([("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif"), ("PPM", ".ppm")]))
def test_lossless_rgb_roundtrip(rgb: np.ndarray, fmt: tuple[str, str]) -> None:
    got = _load_bytes(_encode(Image.fromarray(rgb), fmt[0]), fmt[1])
    np.testing.assert_array_equal(got, rgb)


@SETTINGS
@given(gray_images(), st.sampled_from([("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif")]))
def test_gray_roundtrip_replicates_channels(gray: np.ndarray, fmt: tuple[str, str]) -> None:
    got = _load_bytes(_encode(Image.fromarray(gray), fmt[0]), fmt[1])
    np.testing.assert_array_equal(got, np.repeat(gray[..., None], 3, axis=2))


@SETTINGS
@given(gray_images())
def test_16bit_png_scales_by_full_range(gray8: np.ndarray) -> None:
    """x * 257 (8-bit data widened to 16) comes back exactly; any 16-bit value maps to x // 257."""
    wide = gray8.astype(np.uint16) * 257
    got = _load_bytes(_encode(Image.fromarray(wide), "PNG"), ".png")
    np.testing.assert_array_equal(got[..., 0], gray8)


@SETTINGS
@given(st.data())
def test_16bit_png_any_values(data: st.DataObject) -> None:
    h, w = data.draw(sides), data.draw(sides)
    arr = data.draw(arrays(np.uint16, (h, w)))
    got = _load_bytes(_encode(Image.fromarray(arr), "PNG"), ".png")
    np.testing.assert_array_equal(got[..., 1], (arr // 257).astype(np.uint8))


@SETTINGS
@given(rgb_images(), arrays(np.uint8, st.just((1,))))
def test_rgba_composites_over_black(rgb: np.ndarray, alpha: np.ndarray) -> None:
    a = int(alpha[0])
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], a, np.uint8)])
    got = _load_bytes(_encode(Image.fromarray(rgba, "RGBA"), "PNG"), ".png").astype(int)
    expected = rgb.astype(int) * a / 255.0
    assert np.abs(got - expected).max() <= 1


@SETTINGS
@given(st.integers(MIN_SIDE, 48), st.integers(MIN_SIDE, 48), st.integers(0, 255), st.integers(0, 255))
def test_jpeg_smooth_image_within_tolerance(w: int, h: int, c0: int, c1: int) -> None:
    ramp = np.linspace(c0, c1, w, dtype=np.float32)[None, :].repeat(h, axis=0)
    rgb = np.stack([ramp, ramp[::-1], np.full_like(ramp, (c0 + c1) / 2)], axis=2).astype(np.uint8)
    got = _load_bytes(_encode(Image.fromarray(rgb), "JPEG", quality=95), ".jpg").astype(int)
    assert got.shape == rgb.shape
    assert np.abs(got - rgb.astype(int)).mean() < 4


@SETTINGS
@given(st.integers(1, MIN_SIDE - 1), st.integers(1, 64))
def test_too_small_images_are_input_errors(short: int, long: int) -> None:
    data = _encode(Image.new("RGB", (long, short)), "PNG")
    try:
        _load_bytes(data, ".png")
    except InputError as exc:
        assert "too small" in exc.reason
    else:
        raise AssertionError("a tiny image must be refused")


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=600), st.sampled_from([".png", ".jpg", ".bmp", ".tif", ".webp", ".gif"]))
def test_random_bytes_raise_only_input_error(data: bytes, suffix: str) -> None:
    try:
        rgb = _load_bytes(data, suffix)
    except InputError as exc:
        assert exc.reason
    else:  # random bytes that happen to decode must still give a proper image
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP"]),
    st.integers(0, 10_000),
    st.binary(min_size=1, max_size=40),
    st.booleans(),
)
def test_damaged_real_files_raise_only_input_error(fmt: str, pos: int, junk: bytes, cut: bool) -> None:
    """A real file with bytes overwritten or its tail cut never escapes as a non-InputError."""
    rgb = np.random.default_rng(pos).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    data = bytearray(_encode(Image.fromarray(rgb), fmt))
    at = pos % len(data)
    if cut:
        data = data[:at]
    else:
        data[at : at + len(junk)] = junk
    try:
        out = _load_bytes(bytes(data), "." + fmt.lower())
    except InputError as exc:
        assert exc.reason
    else:
        assert out.dtype == np.uint8 and out.shape[2] == 3
