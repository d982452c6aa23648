"""Which files of the input folders a run reads, and which it leaves out on purpose (so it can say so).

Folders given as inputs are scanned recursively and sorted. Left out of a folder scan, each with a
reason the caller reports: the run's own output folder (a rerun must never read its own masks and
overlays), hidden files (names starting with '.'), mask-like files (ground-truth masks kept beside the
photos: `_mask`/`_label`/`_GT` names, or a binary single-channel image sharing its stem with a photo),
and files that do not match the `--include`/`--exclude` patterns. Files named explicitly are kept as
given: the user asked for them. Nothing here follows or resolves a symlink loop: a loop is listed like
any other entry and fails later, per entry, with its own reason.
"""
from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from iapas.io.images import IMAGE_SUFFIXES, OTHER_IMAGE_SUFFIXES

OUTPUT = "output folder"
HIDDEN = "hidden"
MASK = "mask-like"
PATTERN = "include/exclude pattern"

MASK_SUFFIXES = ("_mask", "_label", "_gt")  # stem endings of ground-truth masks (case-insensitive)
_MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N")  # single channel
_MASK_CHECK_MAX_PIXELS = 16_000_000  # larger single-channel files are not decoded just to classify them
_BINARY_FRACTION = 0.95  # MTD masks carry ~1-3% grey fringe pixels; photos have almost none at 0 / 255


@dataclass
class InputListing:
    """The files a run reads, plus what was left out of folder scans and why."""

    paths: list[Path] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=dict)  # reason -> files left out
    empty_folders: list[Path] = field(default_factory=list)  # given folders that yielded no file

    def skip(self, reason: str, path: Path) -> None:
        self.skipped.setdefault(reason, []).append(path)

    @property
    def files(self) -> list[Path]:
        """The entries that are not folders kept to report "no image here"."""
        return [p for p in self.paths if p not in self.empty_folders]


def _hidden(name: str) -> bool:
    """Dot files: macOS '._x.png' resource forks, '.DS_Store', our own '.x.tmp' partial writes."""
    return name.startswith(".")


def location(p: Path) -> Path:
    """Where an entry lives (its folder resolved, its own name kept): never follows the entry itself,
    so a symlink loop cannot raise here."""
    try:
        return Path(os.path.realpath(p.parent)) / p.name
    except (OSError, RuntimeError, ValueError):
        return Path(os.path.abspath(p))


def _under(p: Path, roots: Sequence[Path]) -> bool:
    return any(p == r or p.is_relative_to(r) for r in roots)


def _real_dir(p: Path) -> Path:
    try:
        return Path(os.path.realpath(p))
    except (OSError, RuntimeError, ValueError):
        return Path(os.path.abspath(p))


def mask_named(path: Path) -> bool:
    """A `_mask` / `_label` / `_GT` stem, the names publishers give ground-truth masks."""
    return path.stem.lower().endswith(MASK_SUFFIXES)


def looks_binary(path: Path) -> bool:
    """A single-channel image whose pixels sit (almost, >= 95%) only at 0 and its top value: a mask, not a photo.

    Reads the header first and decodes only small files; anything unreadable counts as not a mask
    (it is then processed and fails with its own reason).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                if im.mode not in _MASK_MODES or im.size[0] * im.size[1] > _MASK_CHECK_MAX_PIXELS:
                    return False
                if im.mode == "1":
                    return True
                arr = np.asarray(im)
    except Exception:  # noqa: BLE001 - any unreadable file is simply "not a mask"
        return False
    if arr.ndim != 2 or arr.size == 0:
        return False
    top = arr.max()  # 255 usually, 1 for 0/1 masks; some MTD masks top out lower (176)
    return float(np.count_nonzero((arr == 0) | (arr == top))) / arr.size >= _BINARY_FRACTION


def mask_like(files: Iterable[Path]) -> set[Path]:
    """The files of one scan that are ground-truth masks rather than photos."""
    files = list(files)
    found = {f for f in files if mask_named(f)}
    groups: dict[tuple[Path, str], list[Path]] = {}
    for f in files:
        if f not in found:
            groups.setdefault((f.parent, f.stem.lower()), []).append(f)
    for group in groups.values():
        if len(group) < 2:
            continue
        binary = {f for f in group if looks_binary(f)}
        if binary and len(binary) < len(group):  # a mask needs a photo beside it
            found |= binary
    return found


def _matches(rel: str, name: str, patterns: Sequence[str]) -> bool:
    rel, name = rel.lower(), name.lower()
    return any(fnmatch.fnmatchcase(rel, p.lower()) or fnmatch.fnmatchcase(name, p.lower()) for p in patterns)


def _scan_folder(folder: Path, out_dirs: Sequence[Path], listing: InputListing, wanted: tuple[str, ...],
                 dir_suffixes: tuple[str, ...]) -> list[Path]:
    """Image-like entries under `folder`, sorted; directories named like images are kept so they fail loudly."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        kept = []
        for d in sorted(dirs):
            if _hidden(d):
                continue
            if out_dirs and _under(_real_dir(base / d), out_dirs):
                listing.skip(OUTPUT, base / d)
                continue
            kept.append(d)
        dirs[:] = kept
        found.extend(base / d for d in dirs if Path(d).suffix.lower() in dir_suffixes)
        for f in files:
            if Path(f).suffix.lower() not in wanted:
                continue
            if _hidden(f):
                if not f.startswith("._"):  # AppleDouble forks are junk, not the user's images
                    listing.skip(HIDDEN, base / f)
                continue
            found.append(base / f)
    return sorted(found, key=lambda q: str(q))


def list_inputs(
    paths: Sequence[str | Path],
    *,
    out_dirs: Sequence[str | Path] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip_masks: bool = False,
) -> InputListing:
    """Expand files and folders into the files a run reads, recording everything left out and why.

    A given folder that yields no file stays in `paths` (it then fails as "is a directory") and is
    named in `empty_folders`. The same file reached twice is listed once.
    """
    outs = [_real_dir(Path(o)) for o in out_dirs]
    listing = InputListing()
    seen: set[Path] = set()

    def add(q: Path) -> None:
        if q not in seen:
            seen.add(q)
            listing.paths.append(q)

    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            add(p)
            continue
        if outs and _under(_real_dir(p), outs):
            listing.skip(OUTPUT, p)
            scanned: list[Path] = []
        else:
            scanned = _scan_folder(p, outs, listing, IMAGE_SUFFIXES + OTHER_IMAGE_SUFFIXES, IMAGE_SUFFIXES)
        masks = mask_like(q for q in scanned if not q.is_dir()) if skip_masks else set()
        kept = []
        for q in scanned:
            rel = q.relative_to(p).as_posix()
            if (include and not _matches(rel, q.name, include)) or (exclude and _matches(rel, q.name, exclude)):
                listing.skip(PATTERN, q)
            elif q in masks:
                listing.skip(MASK, q)
            else:
                kept.append(q)
        if not kept:
            listing.empty_folders.append(p)
            kept = [p]
        for q in kept:
            add(q)
    return listing


def list_images(paths: list[str | Path], exclude: list[str | Path] | None = None) -> list[Path]:
    """Expand files and folders (recursively, sorted) into image paths; keep explicit files as given.

    Inside folders, image-like files we cannot decode (HEIC, SVG, ...) are listed too, so the run reports them
    instead of skipping them silently; hidden files are skipped; a given folder with no image at all is
    kept as an entry (it then fails as "is a directory"). Paths under `exclude` (e.g. the output
    folder of the same run) are left out of folder scans. `list_inputs` also says what it left out and
    can skip masks and apply glob patterns.
    """
    return list_inputs(paths, out_dirs=exclude or ()).paths
