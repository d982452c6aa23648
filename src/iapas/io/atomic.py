"""Atomic file writes: a reader (or a crash) never sees a half-written output.

Temp files are `.iapas.NAME.xxxxxxxx.tmp` beside the target (NAME cut short so a long target name still fits the
255-byte limit; the `.iapas.` prefix and the 8 hex digits let a later run tell its own leftovers from anybody else's), created with mode 0666 so the user's umask applies as for any other file; JSON never
holds NaN or Infinity (they become null), so every reader can parse it.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None:  # name the target, not the temp file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    return path


TEMP_STEM_CHARS = 40  # of the target's name in its temp name; at most 160 bytes even in 4-byte UTF-8
TEMP_PREFIX = ".iapas."
# the names `_create_temp` makes, and only those: what a sweep of a killed run's leftovers may delete
TEMP_NAME = re.compile(r"\.iapas\..*\.[0-9a-f]{8}\.tmp", re.DOTALL)


def is_temp_name(name: str) -> bool:
    """True for a partial-write file name made by `_create_temp` (never for another program's `.x.tmp`)."""
    return TEMP_NAME.fullmatch(name) is not None


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, exclusive temp file next to `path`. Unlike mkstemp (always 0600) it asks for 0666 and lets
    the umask decide, so outputs are as readable as the user's other files."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f"{TEMP_PREFIX}{path.name[:TEMP_STEM_CHARS]}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable, so a power cut right after a write keeps the new file."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the data itself is already synced
    finally:
        os.close(fd)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_safe(obj: Any) -> Any:
    """`obj` with NaN / Infinity (Python or numpy floats, inside dicts, lists and arrays) turned into None:
    JSON has no such values, and a file holding them breaks strict readers."""
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Pretty UTF-8 JSON, written atomically; non-finite numbers are written as null."""
    text = json.dumps(json_safe(obj), indent=2, ensure_ascii=False, default=_json_default, allow_nan=False)
    return atomic_write_bytes(path, _utf8(text + "\n"))


def _utf8(text: str) -> bytes:
    """UTF-8 bytes; a file name that is not valid UTF-8 (surrogate-escaped by Python) gets U+FFFD instead of
    costing the whole output."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").encode("utf-8")
        except UnicodeEncodeError:
            return text.encode("utf-8", "replace")


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, _utf8(text))


def atomic_write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write one array as .npy (no pickle), atomically.

    Args:
        path: the target file.
        array: any shape and dtype numpy can save without pickling.
    Returns:
        The path written.
    """
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write named arrays as a compressed .npz, atomically.

    Args:
        path: the target file.
        arrays: name -> array, each of any shape and dtype numpy can save without pickling.
    Returns:
        The path written.
    """
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_image(path: str | Path, image: Image.Image | np.ndarray, fmt: str = "PNG") -> Path:
    """Encode an image (PNG by default) and write it atomically.

    Args:
        path: the target file.
        image: a Pillow image, or an (H, W) / (H, W, 3) / (H, W, 4) uint8 array.
        fmt: the Pillow format name.
    Returns:
        The path written.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return atomic_write_bytes(path, buf.getvalue())
