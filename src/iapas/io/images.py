"""Loading images of any common format into RGB uint8 arrays, with errors that name the file.

A line-side tool meets corrupt files, odd pixel formats and huge scans. Every problem with one file becomes
an `InputError(path, reason)` so the run records it and goes on; everything a user would call "an image"
(grayscale, 16-bit, RGBA, palette, CMYK, EXIF-rotated, BMP, TIFF, ...) loads as HxWx3 uint8.

Memory stays bounded: images whose longest side exceeds `MAX_SIDE` are downscaled (JPEGs while decoding,
in draft mode; other formats right after decoding, in their own pixel mode, before any conversion), and
anything that would decode to more than `MAX_DECODE_PIXELS` is refused from its header, masks included.
Measured peak (bench/bench_memory.py): 1.2 GB for a 15500x15500 16-bit RGBA PNG or float TIFF. `LoadedImage.note` says what loading did (downscaled, EXIF-rotated,
16-bit scaled, first page of a multi-page file) so outputs can report it.
"""
from __future__ import annotations

import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from iapas.errors import InputError

# Suffixes collected from folders; the file's content decides how it is decoded.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm", ".gif")
# Image-like files we do not decode: collected from folders so the user hears about them instead of
# having them silently ignored.
OTHER_IMAGE_SUFFIXES = (
    ".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".svg", ".psd", ".ico", ".tga", ".pcx", ".eps",
    ".dng", ".cr2", ".nef", ".arw", ".raw", ".xcf", ".exr", ".hdr", ".dcm", ".pdf",
)
# Pillow format name -> name shown to users. Anything else Pillow can read is refused as unsupported.
SUPPORTED_FORMATS = {
    "PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "BMP": "BMP", "DIB": "BMP", "TIFF": "TIFF",
    "WEBP": "WebP", "PPM": "PNM", "GIF": "GIF",
}
SUPPORTED_TEXT = "PNG, JPEG, BMP, TIFF, WebP, PNM (pgm/ppm), GIF"
MAX_SIDE = 4096  # longest side kept in memory; larger images are downscaled (aspect kept)
MIN_SIDE = 8  # smaller images cannot hold a meaningful defect
MAX_DECODE_PIXELS = 250_000_000  # 0.75-1 GB decoded (RGB to RGBA/float); larger files and masks are refused

# We bound memory ourselves (size check before decoding), so Pillow's bomb guard must not pre-empt it with
# a vaguer message; truncated files must raise, never load half-grey.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

_ROTATING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_TRANSPOSE = {  # EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_NATIVE_RESIZE_MODES = ("RGB", "L", "I;16", "I;16B", "I;16L", "I;16N")  # resized without a full-size copy
_STRIP_BYTES = 32 << 20  # rows converted at a time when a huge image is reduced strip by strip
_SIGNATURES = (  # magic bytes of formats Pillow cannot identify, to name them in the error
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"8BPS", "Photoshop PSD"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)


@dataclass
class LoadedImage:
    """An RGB image plus where it came from and what loading did to it."""

    path: str
    rgb: np.ndarray  # HxWx3 uint8
    original_size: tuple[int, int]  # (width, height) of the file's image as displayed (after EXIF rotation)
    note: str = ""  # e.g. "downscaled from 12000x9000 to 4096x3072 ..."; "; "-joined when several

    @property
    def size(self) -> tuple[int, int]:
        return (self.rgb.shape[1], self.rgb.shape[0])


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text[:-4])  # the tail may cut a character


def _unidentified_reason(head: bytes) -> str:
    """Why Pillow could not identify the content, as specific as the first bytes allow."""
    supported = f"supported formats: {SUPPORTED_TEXT}"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc"):
        return f"unsupported format HEIC/HEIF; {supported}"
    if head[4:12] in (b"ftypavif", b"ftypavis"):
        return f"unsupported format AVIF; {supported}"
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return f"unsupported format ({name}); {supported}"
    stripped = head.lstrip()
    if stripped.startswith(b"<") and (b"<svg" in head or b"<?xml" in head):
        return f"unsupported format (SVG/XML vector image); {supported}"
    if _looks_like_text(head):
        return f"not an image: the file holds text; {supported}"
    return f"not a recognised image (unknown format or damaged header); {supported}"


def check_regular_file(p: Path, what: str = "image") -> None:
    """Raise InputError unless `p` is a readable, non-empty regular file."""
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise InputError(p, "broken symbolic link (its target does not exist)") from None
        raise InputError(p, f"{what} file does not exist") from None
    except PermissionError:
        raise InputError(p, "permission denied (a folder on the path is not accessible)") from None
    except OSError as exc:
        raise InputError(p, f"cannot access file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(p, f"is a directory, expected an {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(p, f"not a regular file (device, pipe or socket), expected an {what} file")
    if st.st_size == 0:
        raise InputError(p, "file is empty (0 bytes)")


def _open(p: Path) -> tuple[object, bytes]:
    """Open for reading; permission and I/O problems become InputErrors with plain reasons."""
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed by the caller
    except PermissionError:
        raise InputError(p, "permission denied (file is not readable; check its permissions)") from None
    except OSError as exc:
        raise InputError(p, f"cannot open file ({exc.strerror or exc})") from None
    try:
        head = fh.read(64)
        fh.seek(0)
    except OSError as exc:
        fh.close()
        raise InputError(p, f"cannot read file ({exc.strerror or exc})") from None
    return fh, head


def _scale_16bit(arr: np.ndarray) -> np.ndarray:
    """16-bit values to 8 bits by full range (x // 257): exact for 8-bit data stored as 16-bit."""
    return (arr.astype(np.uint16, copy=False) // 257).astype(np.uint8)


def _to_rgb(im: Image.Image) -> tuple[Image.Image, str]:
    """Convert any Pillow mode (16-bit, int, float, palette, RGBA, CMYK, LAB) to 8-bit RGB, and say how."""
    if im.mode.startswith("I;16"):
        return Image.fromarray(_scale_16bit(np.asarray(im)), mode="L").convert("RGB"), "16-bit image scaled to 8 bits"
    if im.mode in ("I", "F"):
        arr = np.array(im, dtype=np.float32)  # one working copy, scaled in place (bounded memory)
        finite = np.isfinite(arr)
        all_finite = bool(finite.all())
        vals = arr if all_finite else arr[finite]
        lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 0.0)
        del vals
        unit = im.mode == "F" and lo >= 0.0 and hi <= 1.0
        if not all_finite:
            arr[~finite] = 0.0 if (unit or im.mode == "I") else lo
        del finite
        if im.mode == "I" and lo >= 0 and hi <= 65535:
            if hi <= 255:
                out, how = arr.astype(np.uint8), ""
            else:
                out, how = _scale_16bit(arr.astype(np.uint16)), "16-bit image scaled to 8 bits"
        elif unit:
            out = np.round(np.multiply(arr, 255.0, out=arr), out=arr).astype(np.uint8)
            how = "float image in [0, 1] scaled to 8 bits"
        else:
            scale = 255.0 / (hi - lo) if hi > lo else 0.0
            arr -= lo
            arr *= scale
            out = np.clip(np.round(arr, out=arr), 0, 255, out=arr).astype(np.uint8)
            how = f"{'float' if im.mode == 'F' else '32-bit'} image min-max scaled from [{lo:g}, {hi:g}] to 8 bits"
        del arr
        return Image.fromarray(out, mode="L").convert("RGB"), how
    if im.mode == "RGB":
        return im, ""
    if im.mode in ("P", "PA") and ("transparency" in im.info or im.mode == "PA"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB"), "transparent pixels shown as black"
    return im.convert("RGB"), ""


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not cost the image
        return 1


def fit_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(width, height) with the longest side brought down to `max_side`, aspect kept: how `load_image`
    sizes an image."""
    if max(size) <= max_side:
        return size
    scale = max_side / max(size)
    return (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))


def check_decode_size(p: Path, size: tuple[int, int], scale: int = 1, what: str = "image") -> None:
    """Refuse, from the header alone, anything that would decode to more than MAX_DECODE_PIXELS
    (at 1/`scale` per side, for JPEGs decoded in draft mode): masks get the same limit as images."""
    w, h = size
    if w * h / (scale * scale) > MAX_DECODE_PIXELS:
        raise InputError(
            p, f"{what} is too large to decode safely ({w}x{h} px > {MAX_DECODE_PIXELS // 1_000_000} Mpx); "
            "split or downscale it first",
        )


def _downscaled_rgb(im: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, str]:
    """`im` as 8-bit RGB at `size` without a second full-size copy of a huge image.

    Converting first (RGBA compositing, 16-bit or float scaling, Pillow's premultiplied RGBA resize)
    copies the whole decoded image several times: a 15500x15500 RGBA file peaked at 5 GB. So images are
    downscaled in their own mode and converted after: 1- and 3-channel ones by a plain resize, the others
    box-reduced by an integer factor strip by strip (each strip converted on its own, except float and
    32-bit images, whose 8-bit scaling needs the whole range). `im` is closed (its full-size pixels
    freed) as soon as the small image exists, before that is converted.
    """
    if im.size == size:
        return _to_rgb(im)
    factor = int(min(im.size[0] / size[0], im.size[1] / size[1]))
    keep_mode = im.mode in ("F", "I")
    if im.mode in _NATIVE_RESIZE_MODES or (keep_mode and factor < 2):
        gap = None if im.mode.startswith("I;16") else 2.0  # Pillow cannot reduce() 16-bit images
        small = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=gap)
        im.close()
        return _to_rgb(small)
    if factor < 2:  # at most 2x the target: a full-size conversion is bounded by MAX_SIDE
        rgb, how = _to_rgb(im)
        im.close()
        return rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), how
    w, h = im.size
    rows = max(factor, (_STRIP_BYTES // (4 * w)) // factor * factor)
    canvas = Image.new(im.mode if keep_mode else "RGB", (-(-w // factor), -(-h // factor)))
    how = ""
    for y in range(0, h, rows):
        strip = im.crop((0, y, w, min(h, y + rows)))
        if not keep_mode:
            strip, how = _to_rgb(strip)
        canvas.paste(strip.reduce(factor), (0, y // factor))
    im.close()
    small = canvas.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return _to_rgb(small) if keep_mode else (small, how)


def load_image(path: str | Path, max_side: int = MAX_SIDE) -> LoadedImage:
    """Read `path` as RGB uint8 (downscaled to `max_side` when larger); raise InputError naming the file."""
    p = Path(path)
    check_regular_file(p)
    fh, head = _open(p)
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warnings (EXIF, palette) are not the user's problem
            try:
                im = Image.open(fh)
            except UnidentifiedImageError:
                raise InputError(p, _unidentified_reason(head)) from None
            fmt = im.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise InputError(p, f"unsupported format {fmt}; supported formats: {SUPPORTED_TEXT}")
            frames = int(getattr(im, "n_frames", 1) or 1)
            if frames > 1 and fmt != "MPO":
                notes.append(f"first of {frames} {'pages' if fmt == 'TIFF' else 'frames'} used")
            file_w, file_h = im.size
            if min(file_w, file_h) < MIN_SIDE:
                raise InputError(p, f"image is too small ({file_w}x{file_h} px, need at least {MIN_SIDE} px per side)")
            file_target = fit_size((file_w, file_h), max_side)  # same scale whatever the EXIF rotation
            min_scale = 8 if fmt in ("JPEG", "MPO") and file_target != (file_w, file_h) else 1  # JPEG draft: 1/8
            check_decode_size(p, (file_w, file_h), scale=min_scale)
            if min_scale > 1:  # decode JPEGs straight at a reduced scale (still >= the target)
                im.draft(None, file_target)
            im.load()  # before reading EXIF: for PNG, getexif() loads the pixels and would hide decode errors
            orientation = _exif_orientation(im)
            shown = (file_h, file_w) if orientation in _ROTATING_ORIENTATIONS else (file_w, file_h)
            target = fit_size(shown, max_side)
            native = (target[1], target[0]) if orientation in _ROTATING_ORIENTATIONS else target
            rgb, how = _downscaled_rgb(im, native)  # downscale before converting or rotating: no full-size copy
            if orientation != 1:
                rgb = rgb.transpose(_TRANSPOSE[orientation])
                notes.append(f"rotated upright per EXIF orientation {orientation}")
            if how:
                notes.append(how)
            array = np.asarray(rgb, dtype=np.uint8)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(p, f"image is too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError,
            struct.error, MemoryError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text:
            raise InputError(p, f"truncated image file, the end of the file is missing ({text})") from None
        if isinstance(exc, MemoryError):
            raise InputError(p, "not enough memory to decode this image") from None
        raise InputError(p, f"corrupt image data ({text})") from None
    finally:
        fh.close()
    if target != shown:
        notes.insert(0, f"downscaled from {shown[0]}x{shown[1]} to {target[0]}x{target[1]} (longest side limit "
                        f"{max_side} px; score map and boxes are at the downscaled size)")
    if array.ndim != 3 or array.shape[2] != 3:  # defensive: never hand a wrong shape to a model
        raise InputError(p, f"decoded to an unexpected shape {array.shape}")
    return LoadedImage(path=str(p), rgb=array, original_size=shown, note="; ".join(notes))


MASK_RULES = ("publisher", "official")
OFFICIAL_MASK_LEVEL = 128  # official IAP-AS: cv2.threshold(gt, 128, 255, THRESH_BINARY), i.e. grey > 128


def official_grey(im: Image.Image) -> np.ndarray:
    """The 8-bit grey levels OpenCV's IMREAD_GRAYSCALE gives for a decoded mask (the official reader).

    Grey stays as it is; 16-bit keeps its high byte; colour, palette and 1-bit go through BT.601 luma
    (Pillow's "L" conversion uses the same weights as OpenCV). Returns (H, W) levels.
    """
    if im.mode == "L":
        return np.asarray(im)
    if im.mode.startswith("I;16"):
        return (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
    if im.mode in ("I", "F"):
        return np.asarray(im)
    return np.asarray(im.convert("RGB").convert("L"))


def binarize_mask_levels(levels: np.ndarray, any_positive: bool = False) -> np.ndarray:
    """Mask levels -> bool by the publishers' rule (see `load_mask`).

    Args:
        levels: (H, W) decoded mask levels, any integer dtype.
        any_positive: every non-zero level is defect (palette and 1-bit masks).
    Returns:
        (H, W) bool mask.
    """
    if any_positive:
        return levels > 0
    top = float(levels.max()) if levels.size else 0.0
    if top <= 2:
        return levels > 0
    return levels >= (128 if top <= 255 else 32768)


def _mask_levels(im: Image.Image, rule: str) -> tuple[np.ndarray, bool]:
    """The decoded mask's levels as one channel, and whether any value above 0 is a defect.

    Args:
        im: the decoded mask, already upright.
        rule: "publisher" (brightest channel of colour masks) or "official" (OpenCV's 8-bit grey).

    Returns:
        (H, W) levels (uint8, uint16, int32 or float) and True for palette / 1-bit masks (0 is background,
        the rest defect).
    """
    any_positive = im.mode in ("P", "1")
    if rule == "official":
        return official_grey(im), any_positive
    if im.mode in ("P", "1", "L", "I", "F") or im.mode.startswith("I;16"):
        return np.asarray(im), any_positive
    if im.mode in ("LA", "RGBA", "PA"):
        return np.asarray(im.convert("RGBA"))[..., :3].max(axis=2), any_positive
    return np.asarray(im.convert("RGB")).max(axis=2), any_positive


def load_mask(path: str | Path, size: tuple[int, int] | None = None, rule: str = "publisher") -> np.ndarray:
    """Read a ground-truth mask as bool, binarised as publishers define them; check its size against `size` (w, h).

    The one mask reader of iapas (dataset readers, reports and the run outputs use it alike). Palette and
    1-bit masks, and masks whose values are at most 2 (0/1, 0/1/2 class maps): any value > 0 is a defect.
    8-bit masks (MVTec, MTD, KSDD, DAGM): at least half the range (>= 128), which ignores the faint
    compression fringe some publishers' masks carry (MTD has ~3% of its defect-adjacent pixels at 1..127).
    16-bit masks: >= 32768. Colour masks are read by their brightest channel. An EXIF orientation turns the
    mask upright the same way `load_image` turns the photo, so both stay aligned.

    `rule="official"` is the official IAP-AS evaluation's reading (`--protocol paper`): the mask as OpenCV's
    8-bit grey image (colour and palette by BT.601 luma, 16-bit by its high byte) and defect where > 128.
    """
    if rule not in MASK_RULES:
        raise ValueError(f"unknown mask rule {rule!r}; allowed: {', '.join(MASK_RULES)}")
    p = Path(path)
    try:
        check_regular_file(p, what="mask")
    except InputError as exc:
        if exc.reason.endswith("does not exist"):
            raise InputError(p, "mask file is missing") from None
        raise
    fh, head = _open(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                im = Image.open(fh)
            except UnidentifiedImageError:
                raise InputError(p, "cannot read mask: " + _unidentified_reason(head)) from None
            check_decode_size(p, im.size, what="mask")
            # before decoding (a wrong size costs nothing); either way round, as EXIF may turn the mask upright
            if size is not None and im.size != tuple(size) and im.size[::-1] != tuple(size):
                raise InputError(
                    p, f"mask size {im.size[0]}x{im.size[1]} differs from its image size {size[0]}x{size[1]}"
                )
            im.load()
            orientation = _exif_orientation(im)  # turned upright exactly as `load_image` turns its image
            if orientation != 1:
                im = im.transpose(_TRANSPOSE[orientation])
            arr, any_positive = _mask_levels(im, rule)
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise InputError(p, f"cannot read mask ({exc})") from None
    except MemoryError:
        raise InputError(p, "not enough memory to decode this mask") from None
    finally:
        fh.close()
    levels = np.asarray(arr)
    mask = levels > OFFICIAL_MASK_LEVEL if rule == "official" else binarize_mask_levels(levels, any_positive)
    if mask.ndim != 2:
        raise InputError(p, f"mask decoded to an unexpected shape {mask.shape}")
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        raise InputError(
            p, f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image size {size[0]}x{size[1]}"
        )
    return mask

