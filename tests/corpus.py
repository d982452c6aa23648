"""A generated corpus of the bad and odd inputs a line-side tool meets (issue 6), for loader and CLI tests.

`build_corpus(root)` writes every case under root/images and returns the cases with what must happen:
good cases load to a known size (and known pixels where the format is lossless); bad cases raise an
InputError whose reason contains `reason`.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Case:
    """One corpus file and the expected outcome."""

    path: Path
    ok: bool
    reason: str = ""  # substring of the InputError reason (bad cases)
    size: tuple[int, int] | None = None  # (w, h) after loading (good cases)
    rgb: np.ndarray | None = None  # exact expected pixels (lossless good cases)
    note: str = ""  # substring of LoadedImage.note (good cases)
    needs_unprivileged: bool = False  # permission cases cannot be produced for root


def pattern(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, structured RGB test image (compresses well, survives JPEG within a few levels)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.02, 0.1, size=2)
    r = 127 + 100 * np.sin(xx * a)
    g = 127 + 100 * np.cos(yy * b)
    bl = 255 * (xx + yy) / max(1, (h + w - 2))
    return np.clip(np.stack([r, g, bl], axis=2), 0, 255).astype(np.uint8)


def png16_rgb(arr: np.ndarray) -> bytes:
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def bad_cases(d: Path) -> list[Case]:
    """Inputs that must each give a clear per-file error while the run goes on."""
    rgb = pattern(48, 64)
    jpeg = encode(Image.fromarray(rgb), "JPEG", quality=90)
    png = encode(Image.fromarray(rgb), "PNG")
    cases = [
        Case(_write(d / "zero_bytes.png", b""), False, "empty (0 bytes)"),
        Case(_write(d / "truncated.jpg", jpeg[: len(jpeg) * 2 // 3]), False, "truncated"),
        Case(_write(d / "truncated.png", png[: len(png) // 2]), False, "truncated"),
        Case(_write(d / "text_named.png", b"this is a text file, not an image\n" * 3), False, "holds text"),
        Case(_write(d / "vector.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"/>'), False,
             "unsupported format"),
        Case(_write(d / "icon.ico", encode(Image.fromarray(rgb), "ICO")), False, "unsupported format ICO"),
        Case(_write(d / "one_pixel.png", encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")), False, "too small"),
    ]
    folder = d / "folder_not_file.png"
    folder.mkdir(parents=True, exist_ok=True)
    cases.append(Case(folder, False, "is a directory"))
    locked = _write(d / "unreadable.png", png)
    os.chmod(locked, 0)
    cases.append(Case(locked, False, "permission denied", needs_unprivileged=True))
    return cases


def _exif_rotated_jpeg(rgb: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(rgb), "JPEG", quality=95, exif=exif.tobytes())


def good_cases(d: Path) -> list[Case]:
    """Inputs that must just work, with their expected size (and pixels where lossless)."""
    rgb = pattern(40, 56, seed=1)
    gray = rgb[..., 0]
    g3 = np.repeat(gray[..., None], 3, axis=2)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # transparent corner -> black
    over_black = rgb.copy()
    over_black[:10, :10] = 0
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal_rgb = np.asarray(pal.convert("RGB"))
    pal_t = pal.copy()
    pal_t.info["transparency"] = int(np.asarray(pal)[0, 0])
    pal_t_rgb = pal_rgb.copy()
    pal_t_rgb[np.asarray(pal) == np.asarray(pal)[0, 0]] = 0
    sixteen = gray.astype(np.uint16) * 257  # 8-bit data stored as 16 bits: must scale back exactly
    rgb16 = rgb.astype(np.uint16) * 257
    size = (56, 40)
    multipage = io.BytesIO()
    Image.fromarray(rgb).save(multipage, format="TIFF", save_all=True, append_images=[Image.fromarray(rgb[::-1])])
    floats = gray.astype(np.float32) / 255.0
    wide = pattern(24, 40, seed=2)  # stored 40x24, EXIF 6 = rotate 90 degrees clockwise for display
    return [
        Case(_write(d / "gray.png", encode(Image.fromarray(gray), "PNG")), True, size=size, rgb=g3),
        Case(_write(d / "gray16.png", encode(Image.fromarray(sixteen), "PNG")), True, size=size, rgb=g3,
             note="16-bit"),
        Case(_write(d / "rgb48.png", png16_rgb(rgb16)), True, size=size, rgb=rgb),
        Case(_write(d / "rgba.png", encode(Image.fromarray(rgba, "RGBA"), "PNG")), True, size=size, rgb=over_black),
        Case(_write(d / "palette.png", encode(pal, "PNG")), True, size=size, rgb=pal_rgb),
        Case(_write(d / "palette_transparent.png", encode(pal_t, "PNG", transparency=pal_t.info["transparency"])),
             True, size=size, rgb=pal_t_rgb),
        Case(_write(d / "cmyk.jpg", encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)), True,
             size=size),
        Case(_write(d / "exif_rotated.jpg", _exif_rotated_jpeg(wide, 6)), True, size=(24, 40), note="EXIF"),
        Case(_write(d / "plain.bmp", encode(Image.fromarray(rgb), "BMP")), True, size=size, rgb=rgb),
        Case(_write(d / "plain.tif", encode(Image.fromarray(rgb), "TIFF")), True, size=size, rgb=rgb),
        Case(_write(d / "float.tif", encode(Image.fromarray(floats, "F"), "TIFF")), True, size=size, rgb=g3),
        Case(_write(d / "pages.tif", multipage.getvalue()), True, size=size, rgb=rgb, note="first of 2 pages"),
        Case(_write(d / "plain.webp", encode(Image.fromarray(rgb), "WEBP", lossless=True)), True, size=size, rgb=rgb),
        Case(_write(d / "grey level.pgm", encode(Image.fromarray(gray), "PPM")), True, size=size, rgb=g3),
        Case(_write(d / "Prüfteil Nr 7 – ok.png", encode(Image.fromarray(rgb), "PNG")), True, size=size, rgb=rgb),
        Case(_write(d / "部品 01.jpg", encode(Image.fromarray(rgb), "JPEG", quality=95)), True, size=size),
        Case(_write(d / "min_side.png", encode(Image.fromarray(rgb[:8, :8].copy()), "PNG")), True, size=(8, 8),
             rgb=rgb[:8, :8]),
        Case(_write(d / "line_scan_strip.png", encode(Image.fromarray(pattern(8, 300)), "PNG")), True, size=(300, 8),
             rgb=pattern(8, 300)),
        # the same stem in different formats and folders: each needs its own outputs
        Case(_write(d / "same.png", encode(Image.fromarray(rgb), "PNG")), True, size=size, rgb=rgb),
        Case(_write(d / "same.bmp", encode(Image.fromarray(rgb[::-1].copy()), "BMP")), True, size=size,
             rgb=rgb[::-1]),
        Case(_write(d / "lot_a" / "same.png", encode(Image.fromarray(rgb[:, ::-1].copy()), "PNG")), True, size=size,
             rgb=rgb[:, ::-1]),
        Case(_write(d / "lot_b" / "same.png", encode(Image.fromarray(255 - rgb), "PNG")), True, size=size,
             rgb=255 - rgb),
    ]


def build_corpus(root: Path) -> list[Case]:
    """Write all cases under root/images (good and bad side by side, as on a real share)."""
    d = root / "images"
    return bad_cases(d) + good_cases(d)


def write_normals(folder: Path, n: int = 4, size: tuple[int, int] = (64, 48)) -> list[Path]:
    """A few plain normal images for Stage 1."""
    out = []
    for i in range(n):
        out.append(_write(folder / f"good_{i:02d}.png", encode(Image.fromarray(pattern(size[1], size[0], seed=i)), "PNG")))
    return out
