"""Loading images of any common format into RGB uint8 arrays, with errors that name the file.

Large images are downscaled while decoding (JPEG draft mode) so memory stays bounded; the returned
`LoadedImage.note` says when that happened so outputs can report it.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from iapas.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_SIDE = 4096  # longest side kept in memory; larger images are downscaled (aspect kept)
MIN_SIDE = 8  # smaller images cannot hold a meaningful defect

# We bound memory ourselves (draft + downscale), so lift Pillow's bomb guard to a generous cap.
Image.MAX_IMAGE_PIXELS = 40000 * 40000


@dataclass
class LoadedImage:
    """An RGB image plus where it came from and what loading did to it."""

    path: str
    rgb: np.ndarray  # HxWx3 uint8
    original_size: tuple[int, int]  # (width, height) in the file
    note: str = ""  # e.g. "downscaled from 12000x9000 to 4096x3072"

    @property
    def size(self) -> tuple[int, int]:
        return (self.rgb.shape[1], self.rgb.shape[0])


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode (16-bit, palette, RGBA, CMYK, float) to 8-bit RGB."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if im.mode.startswith("I;16"):
            lo, hi = 0.0, 65535.0 if hi > 255 else 255.0
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr8 = np.clip((arr - lo) * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


def load_image(path: str | Path, max_side: int = MAX_SIDE) -> LoadedImage:
    """Read `path` as RGB uint8; raise InputError naming the file and the problem."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file does not exist")
    if p.is_dir():
        raise InputError(p, "is a directory, expected an image file")
    if not os.access(p, os.R_OK):
        raise InputError(p, "permission denied (file is not readable)")
    if p.stat().st_size == 0:
        raise InputError(p, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                original = im.size
                if im.format == "JPEG" and max(original) > max_side:
                    im.draft("RGB", (max_side, max_side))
                im = ImageOps.exif_transpose(im)
                original = im.size if im.size != original and max(original) <= max_side else original
                im.load()
                rgb = _to_rgb(im)
    except UnidentifiedImageError:
        raise InputError(p, "not a recognised image (unsupported format or not an image file)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(p, f"corrupt or truncated image ({exc})") from None
    if min(rgb.size) < MIN_SIDE:
        raise InputError(p, f"image is too small ({rgb.size[0]}x{rgb.size[1]} px, need at least {MIN_SIDE})")
    note = ""
    if max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        new = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
        rgb = rgb.resize(new, Image.Resampling.BILINEAR)
    if rgb.size != original:
        note = f"downscaled from {original[0]}x{original[1]} to {rgb.size[0]}x{rgb.size[1]}"
    return LoadedImage(path=str(p), rgb=np.asarray(rgb, dtype=np.uint8), original_size=original, note=note)


def load_mask(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as bool (any value > 0 is defect); check its size against `size` (w, h)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "mask file is missing")
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode == "P":
                arr = np.asarray(im)  # palette index: 0 is background
            else:
                arr = np.asarray(im.convert("L") if im.mode not in ("L", "1", "I", "I;16") else im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(p, f"cannot read mask ({exc})") from None
    mask = arr > 0
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        raise InputError(
            p, f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image size {size[0]}x{size[1]}"
        )
    return mask


def list_images(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into image paths; keep explicit files as given."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and is_image_file(q)))
        else:
            out.append(p)
    return out
