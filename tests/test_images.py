"""Image loading against the generated corpus of bad and odd files, plus masks and listing."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from corpus import Case, build_corpus, encode, pattern
from iapas.errors import InputError
from iapas.io.images import MAX_SIDE, load_image, load_mask
from iapas.io.listing import list_images

IS_ROOT = os.geteuid() == 0


def _key(c: Case) -> str:
    return c.path.name if c.path.parent.name == "images" else f"{c.path.parent.name}/{c.path.name}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {_key(c): c for c in build_corpus(tmp_path_factory.mktemp("corpus"))}


def _names(good: bool) -> list[str]:
    with tempfile.TemporaryDirectory() as d:  # names only; the fixture builds the real files
        return [_key(c) for c in build_corpus(Path(d)) if c.ok == good]


def _case(corpus: dict[str, Case], key: str) -> Case:
    return corpus[key]


def test_truncated_images_are_never_loaded_half_grey() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def _load_error_as_nobody(path: Path) -> tuple[str, str]:
    """`load_image(path)` in a subprocess run as user nobody (setpriv): root reads any file, nobody does not.

    Returns the InputError's (path, reason); fails if the load succeeds or raises anything else.
    """
    code = (
        "import json, sys\nfrom iapas.io.images import load_image\nfrom iapas.errors import InputError\n"
        f"try:\n    load_image({str(path)!r})\nexcept InputError as e:\n"
        "    print(json.dumps([e.path, e.reason])); sys.exit(0)\nsys.exit(1)\n"
    )
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(path.parent)},
                         cwd=path.parent)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    return got[0], got[1]


@pytest.mark.parametrize("key", _names(good=False))
def test_bad_input_raises_input_error_naming_file(corpus: dict[str, Case], key: str) -> None:
    case = _case(corpus, key)
    if case.needs_unprivileged and IS_ROOT:  # root ignores file modes: the same file, loaded as nobody
        d = Path(tempfile.mkdtemp(prefix="iapas-perm-"))
        try:
            os.chmod(d, 0o755)  # nobody must reach the file, so it leaves pytest's private tmp folder
            copy = Path(shutil.copy2(case.path, d / case.path.name))
            assert copy.stat().st_mode & 0o777 == case.path.stat().st_mode & 0o777
            path, reason = _load_error_as_nobody(copy)
            assert path == str(copy) and case.reason in reason
        finally:
            shutil.rmtree(d)
        return
    with pytest.raises(InputError) as info:
        load_image(case.path)
    assert info.value.path == str(case.path)
    assert case.reason in info.value.reason


@pytest.mark.parametrize("key", _names(good=True))
def test_odd_but_valid_input_loads_as_rgb(corpus: dict[str, Case], key: str) -> None:
    case = _case(corpus, key)
    img = load_image(case.path)
    assert img.rgb.dtype == np.uint8 and img.rgb.ndim == 3 and img.rgb.shape[2] == 3
    assert img.size == case.size and img.original_size == case.size
    if case.rgb is not None:
        np.testing.assert_array_equal(img.rgb, case.rgb)
    if case.note:
        assert case.note in img.note


def test_jpeg_and_cmyk_close_to_source(corpus: dict[str, Case]) -> None:
    src = pattern(40, 56, seed=1).astype(int)
    for key in ("cmyk.jpg", "部品 01.jpg"):
        err = np.abs(load_image(_case(corpus, key).path).rgb.astype(int) - src).mean()
        assert err < 6, (key, err)


def test_exif_rotation_puts_pixels_upright(tmp_path: Path) -> None:
    stored = np.zeros((24, 40, 3), np.uint8)
    stored[:, :8] = 255  # white band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise: left edge becomes the top
    p = tmp_path / "rot.jpg"
    p.write_bytes(encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes()))
    img = load_image(p)
    assert img.size == (24, 40) and img.original_size == (24, 40)
    assert img.rgb[:6].mean() > 200 and img.rgb[12:].mean() < 40
    assert "EXIF orientation 6" in img.note


def test_unreadable_file_as_unprivileged_user(tmp_path: Path) -> None:
    """A chmod 000 file must fail with 'permission denied'; as root, check it as user nobody."""
    d = Path(tempfile.mkdtemp(prefix="iapas-perm-"))
    try:
        os.chmod(d, 0o755)
        p = d / "locked.png"
        p.write_bytes(encode(Image.fromarray(pattern(16, 16)), "PNG"))
        os.chmod(p, 0)
        if IS_ROOT:
            path, reason = _load_error_as_nobody(p)
        else:
            with pytest.raises(InputError) as info:
                load_image(p)
            path, reason = info.value.path, info.value.reason
        assert path == str(p) and "permission denied" in reason
    finally:
        os.chmod(d / "locked.png", 0o644)
        for q in d.iterdir():
            q.unlink()
        d.rmdir()


def test_unsupported_message_lists_supported_formats(corpus: dict[str, Case]) -> None:
    with pytest.raises(InputError) as info:
        load_image(_case(corpus, "vector.svg").path)
    assert "PNG, JPEG, BMP, TIFF" in info.value.reason


def test_missing_file_and_broken_link(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "link.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(InputError, match="broken symbolic link"):
        load_image(tmp_path / "link.png")


def test_garbage_after_valid_png_header_is_corrupt_not_crash(tmp_path: Path) -> None:
    data = bytearray(encode(Image.fromarray(pattern(32, 32)), "PNG"))
    data[60:120] = bytes(range(60))  # damage the IDAT stream
    p = tmp_path / "damaged.png"
    p.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        load_image(p)
    assert info.value.path == str(p)


@pytest.mark.slow
def test_large_jpeg_is_downscaled_while_decoding(tmp_path: Path) -> None:
    big = Image.fromarray(pattern(300, 400)).resize((12000, 9000))
    p = tmp_path / "big.jpg"
    big.save(p, quality=70)
    img = load_image(p)
    assert img.size == (MAX_SIDE, 3072) and img.original_size == (12000, 9000)
    assert "downscaled from 12000x9000 to 4096x3072" in img.note


@pytest.mark.slow
def test_large_png_in_bounded_memory(tmp_path: Path) -> None:
    """12000x9000 RGB PNG (324 MB decoded): loads downscaled with peak memory well under 1 GB."""
    arr = np.zeros((9000, 12000, 3), np.uint8)
    arr[:, :, 0] = np.arange(12000, dtype=np.uint32)[None, :] * 255 // 11999
    arr[4000:5000, 6000:7000] = 255
    p = tmp_path / "huge scan.png"
    Image.fromarray(arr).save(p, compress_level=1)
    del arr
    code = (
        "import json\nfrom iapas.io.images import load_image\n"
        "def hwm():\n    # VmHWM: peak RSS of this process image (ru_maxrss would include the forking parent's)\n"
        "    for line in open('/proc/self/status'):\n        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1])\n"
        f"img = load_image({str(p)!r})\n"
        "print(json.dumps({'size': img.size, 'orig': img.original_size, 'note': img.note, "
        "'peak_kb': hwm(), "
        "'white': float(img.rgb[1500:1600, 2200:2300].mean()), 'ramp': [int(img.rgb[10, 5, 0]), int(img.rgb[10, -5, 0])]}))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    import json

    out = json.loads(res.stdout)
    assert out["size"] == [4096, 3072] and out["orig"] == [12000, 9000]
    assert "downscaled from 12000x9000" in out["note"]
    assert out["white"] == 255.0 and out["ramp"][0] < 5 and out["ramp"][1] > 250
    assert out["peak_kb"] < 1_000_000, f"peak RSS {out['peak_kb'] / 1024:.0f} MB"


def test_image_above_decode_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    import iapas.io.images as images

    p = tmp_path / "wide.png"
    Image.fromarray(pattern(40, 300)).save(p)
    old = images.MAX_DECODE_PIXELS
    images.MAX_DECODE_PIXELS = 10_000
    try:
        with pytest.raises(InputError, match="too large"):
            load_image(p)
    finally:
        images.MAX_DECODE_PIXELS = old


# ---------------------------------------------------------------- masks


def test_mask_variants(tmp_path: Path) -> None:
    m = np.zeros((20, 30), np.uint8)
    m[5:10, 5:15] = 255
    for mode, arr in (("L", m), ("1", m > 0), ("RGBA", np.dstack([m, m, m, np.full_like(m, 255)]))):
        p = tmp_path / f"m_{mode}.png"
        Image.fromarray(arr).convert(mode).save(p)
        got = load_mask(p, size=(30, 20))
        assert got.dtype == bool and got.sum() == 50, mode
    p16 = tmp_path / "m16.png"
    Image.fromarray(m.astype(np.uint16) * 257).save(p16)
    assert load_mask(p16).sum() == 50


def test_mask_errors(tmp_path: Path) -> None:
    p = tmp_path / "m.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(p)
    with pytest.raises(InputError, match="mask size 30x20 differs from its image size 40x20"):
        load_mask(p, size=(40, 20))
    with pytest.raises(InputError, match="mask file is missing"):
        load_mask(tmp_path / "missing_mask.png")
    (tmp_path / "dir_mask.png").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        load_mask(tmp_path / "dir_mask.png")
    (tmp_path / "text_mask.png").write_text("not a mask")
    with pytest.raises(InputError, match="cannot read mask"):
        load_mask(tmp_path / "text_mask.png")


# ---------------------------------------------------------------- listing


def test_list_images_reports_undecodable_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "photo.HEIC").write_bytes(b"x")
    (tmp_path / "._a.png").write_bytes(b"x")  # macOS resource fork
    (tmp_path / ".a.png.1234.tmp").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "dir.png" / "inner.bmp").write_bytes(b"x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "thumb.png").write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in list_images([tmp_path])]
    assert names == ["a.png", "dir.png", "dir.png/inner.bmp", "photo.HEIC"]


def test_list_images_excludes_output_folder_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_overlay.png").write_bytes(b"x")
    got = list_images([tmp_path, tmp_path / "a.png"], exclude=[tmp_path / "out"])
    assert got == [tmp_path / "a.png"]


def test_list_images_keeps_explicit_missing_file_for_reporting(tmp_path: Path) -> None:
    assert list_images([tmp_path / "missing.png"]) == [tmp_path / "missing.png"]


def test_bytes_io_not_required_roundtrip(tmp_path: Path) -> None:
    """A PNG written by another tool with an odd but valid LA mode loads with alpha over black."""
    la = np.dstack([np.full((16, 16), 200, np.uint8), np.full((16, 16), 255, np.uint8)])
    la[:4, :, 1] = 0
    p = tmp_path / "la.png"
    buf = io.BytesIO()
    Image.fromarray(la, "LA").save(buf, format="PNG")
    p.write_bytes(buf.getvalue())
    img = load_image(p)
    assert (img.rgb[:4] == 0).all() and (img.rgb[4:] == 200).all()
