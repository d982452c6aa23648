"""Per-image outputs of `run` / `segment` and the run's summary.json (the files: README "Use").

Per image NAME: the score map (NAME.npz, float16, by default; NAME.npy float32 or none with `--maps`),
NAME_mask.png, NAME_overlay.png, NAME.json. The JSON is written last and carries the settings digest, so a
rerun of the same command knows the image is done.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from iapas.io.atomic import atomic_write_image, atomic_write_json, is_temp_name
from iapas.io.resume import Stamp, matches
from iapas.io.scoremaps import DEFAULT_MAPS, map_file_name, write_score_map
from iapas.outputs import overlay as overlays  # called through the module: tests replace render_overlay
from iapas.types import Prediction

_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
RESERVED_NAMES = frozenset({"summary", "context", "context.bank", "metrics", "report", "results", "annotations"})
RESERVED_DIRS = frozenset({"report_assets", "report_pages"})  # folders a run writes itself
THUMBS = "report_assets/thumbs"  # per-image report tiles, mirrored like the outputs
THUMB_SIDE = 240
MAX_NAME_BYTES = 160  # leaves room for suffixes like "_overlay.png" under the usual 255-byte limit


def _safe(text: str) -> str:
    name = _UNSAFE.sub("_", text).strip("._") or "image"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:  # keep it unique with a hash of the full text
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
        cut = name.encode("utf-8")[: MAX_NAME_BYTES - 12].decode("utf-8", errors="ignore")
        name = f"{cut}__{digest}"
    if name.casefold() in RESERVED_NAMES:  # files a run writes itself (summary.json, report.html, ...)
        name = f"{name}_input"
    return name


def _mirrored(p: Path, roots: list[Path]) -> list[str]:
    """Folder parts (below the input folder that holds it) + stem of one input; just the stem otherwise."""
    ap = Path(os.path.abspath(p))
    for root in sorted((Path(os.path.abspath(r)) for r in roots), key=lambda r: -len(r.parts)):
        if ap != root and ap.is_relative_to(root):
            return [*ap.relative_to(root).parent.parts, ap.stem]
    return [ap.stem]


def _join(parts: list[str]) -> str:
    safe = [_safe(x) for x in parts]
    if safe[0].casefold() in RESERVED_DIRS and len(safe) > 1:
        safe[0] = f"{safe[0]}_input"
    return "/".join(safe)


def output_names(paths: list[Path], roots: list[Path] | None = None) -> dict[Path, str]:
    """A distinct output name per input: nested input folders are mirrored under OUT (`lotA/part1`),
    files given one by one keep their stem. Where two inputs would still collide, the name is widened,
    in this order: the extension joins the stem (`a_png` vs `a_jpg`), then the input's parent folder
    becomes a sub-folder (`x/a_png` vs `y/a_png`), then a number (`a__2`, in input order).

    Names are compared case-insensitively, so outputs stay distinct on case-insensitive file systems.
    """
    resolved = [Path(p) for p in paths]
    parts = {p: _mirrored(p, list(roots or [])) for p in resolved}
    names = {p: _join(parts[p]) for p in resolved}
    for widen in ("suffix", "parents"):
        counts = Counter(n.casefold() for n in names.values())
        for p in resolved:
            if counts[names[p].casefold()] > 1:
                ext = f"{p.stem}_{p.suffix.lstrip('.')}" if p.suffix else p.stem
                if widen == "suffix":
                    names[p] = _join([*parts[p][:-1], ext])
                elif len(parts[p]) == 1:  # a file given on its own: its folder's name disambiguates
                    names[p] = _join([Path(os.path.abspath(p)).parent.name or "root", ext])
    counts = Counter(n.casefold() for n in names.values())
    seen: Counter[str] = Counter()
    for p in resolved:  # last resort (same path given twice, or names equal up to case): number them
        key = names[p].casefold()
        if counts[key] > 1:
            seen[key] += 1
            names[p] = f"{names[p]}__{seen[key]}"
    return names


def display_path(path: str | Path) -> str:
    """A path as printable text: file names that are not valid UTF-8 get U+FFFD instead of crashing JSON."""
    return str(path).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def source_fingerprint(path: Path) -> dict[str, int] | None:
    """Size and mtime of an input file: a cached result is reused only for the very same file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def is_done(out_dir: Path, name: str, digest: str, source: Path | None = None, maps: str | None = None) -> bool:
    """True when NAME.json exists, is complete, was made with the same settings (and from the same
    unchanged input file when `source` is given), all files it lists exist and, with `maps`, its score
    map is in that format (a rerun with another `--maps` rewrites the image)."""
    meta = out_dir / f"{name}.json"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    files = (data.get("files") if isinstance(data, dict) else None) or {"score_map": f"{name}.npy"}
    if maps is not None and files.get("score_map") != map_file_name(name, maps):
        return False
    now = source_fingerprint(source) if source is not None else None
    if source is not None and now is None:  # the input is gone or unreadable: nothing to compare with
        return False
    stamp = Stamp(digest, now)
    return matches(data, stamp, [out_dir / str(f) for f in files.values()])


class OutsideOutput(OSError):
    """An output would land outside the real OUT because a folder inside OUT is a symbolic link leading out."""


def link_leading_out(out_dir: Path, rel: str | Path) -> tuple[Path, Path] | None:
    """(link, where it leads) for the first folder of OUT/rel's parents that is a symbolic link resolving
    outside the real OUT; None when the file would stay inside OUT."""
    real_out = Path(os.path.realpath(out_dir))
    here = Path(out_dir)
    for part in Path(rel).parent.parts:
        here = here / part
        if here.is_symlink():
            target = Path(os.path.realpath(here))
            if not target.is_relative_to(real_out):
                return here, target
    return None


def check_inside(out_dir: Path, files: Any) -> None:
    """Refuse to write any of `files` (paths relative to OUT) through a folder link that leads out of OUT.

    Raises:
        OutsideOutput: naming the link and its target.
    """
    for rel in files:
        found = link_leading_out(out_dir, rel)
        if found is not None:
            link, target = found
            raise OutsideOutput(errno.EXDEV, f"{display_path(link)} is a symbolic link to {display_path(target)}, "
                                             f"outside --out; nothing written there (remove the link)", str(link))


def prediction_files(name: str, map_name: str | None) -> dict[str, str]:
    """Role -> file name (relative to the output folder) of each per-image file of image NAME.

    Args:
        name: the image's output name.
        map_name: the score map's file name (None: no map written, `--maps none`).

    Returns:
        score_map (when written), mask, overlay, thumb and json.
    """
    return {
        **({"score_map": map_name} if map_name else {}),
        "mask": f"{name}_mask.png",
        "overlay": f"{name}_overlay.png",
        "thumb": f"{THUMBS}/{name}.jpg",
        "json": f"{name}.json",
    }


def write_prediction(
    out_dir: Path,
    name: str,
    rgb: np.ndarray,
    pred: Prediction,
    digest: str,
    *,
    source: Path | None = None,
    original_size: tuple[int, int] | None = None,
    scale: tuple[float, float] | None = None,
    extra: dict[str, Any] | None = None,
    maps: str = DEFAULT_MAPS,
) -> dict[str, str]:
    """Write the per-image files (score map, mask, overlay, report thumbnail), then NAME.json.

    The JSON comes last, so a crash never leaves a 'done' image half-written.

    Args:
        out_dir: the run's output folder.
        name: the image's output name (NAME).
        rgb: (H, W, 3) uint8 image, the size of the prediction's (H, W) score map and mask.
        pred: the prediction.
        digest: the settings digest stamped in the JSON (resume).
        source: the input file, fingerprinted in the JSON.
        original_size: (W, H) of the file before any downscaling, when it differs.
        scale: (threshold, top) of the overlay colours.
        extra: joins the JSON (e.g. the verdict).
        maps: the score map format (npz16, npy, none).
    Returns:
        Role -> file name of each file written.
    """
    map_name = map_file_name(name, maps)
    files = prediction_files(name, map_name)
    check_inside(out_dir, files.values())
    (out_dir / files["json"]).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / files["thumb"]).parent.mkdir(parents=True, exist_ok=True)
    check_inside(out_dir, files.values())  # again once the folders exist: a link planted meanwhile
    if map_name:
        write_score_map(out_dir / map_name, pred.score_map, maps)
    atomic_write_image(out_dir / files["mask"], (pred.mask.astype(np.uint8) * 255))
    try:
        overlay = overlays.render_overlay(rgb, pred, scale=scale)
    except Exception as exc:  # noqa: BLE001 - a drawing problem must not cost the image its results
        overlay = Image.fromarray(plain_overlay(rgb, pred.mask))
        pred.notes.append(f"overlay drawn in plain form ({type(exc).__name__}: {exc})")
    atomic_write_image(out_dir / files["overlay"], overlay)
    atomic_write_image(out_dir / files["thumb"], thumbnail(overlay), fmt="JPEG")
    meta = pred.to_json()
    meta.update({"name": name, "files": files, "settings_digest": digest, **(extra or {})})
    if overlay.info.get("image_box"):  # where the picture sits inside the overlay (header above, legend below)
        meta["overlay_image_box"] = [int(v) for v in overlay.info["image_box"]]
    if original_size is not None:
        meta["original_size"] = [int(original_size[0]), int(original_size[1])]
    if source is not None:
        meta["source"] = source_fingerprint(source)
    atomic_write_json(out_dir / files["json"], meta)
    return files


def thumbnail(overlay: Image.Image | np.ndarray, side: int = THUMB_SIDE) -> Image.Image:
    """The picture part of an overlay (no header or legend), at most `side` px: the run report's tiles.

    Args:
        overlay: the overlay, as a Pillow image (its "image_box" info crops it) or an (H, W, 3) uint8 array.
        side: longest side of the thumbnail.
    Returns:
        The RGB thumbnail.
    """
    img = overlay if isinstance(overlay, Image.Image) else Image.fromarray(np.asarray(overlay, dtype=np.uint8))
    box = img.info.get("image_box")
    if box:
        x, y, w, h = box
        img = img.crop((x, y, x + w, y + h))
    img = img.convert("RGB")
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    return img


def plain_overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fallback overlay: the image with the predicted mask tinted red (no text, no colour bar).

    Args:
        rgb: (H, W, 3) image.
        mask: (H, W) bool mask (ignored when its size differs).
    Returns:
        (H, W, 3) uint8 image.
    """
    out = np.asarray(rgb, dtype=np.float32).copy()
    m = np.asarray(mask, dtype=bool)
    if m.shape == out.shape[:2]:
        out[m] = 0.5 * out[m] + 0.5 * np.array([255.0, 0.0, 0.0], dtype=np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def remove_stale_temp_files(out_dir: Path, subdirs: tuple[str, ...] = ()) -> list[Path]:
    """Delete partial files a killed run left behind under OUT: only names `iapas.io.atomic` makes
    (`.iapas.NAME.xxxxxxxx.tmp`), only in OUT and its visible sub-folders (outputs of nested inputs, the report's
    assets, an evaluation's cache/), never inside hidden folders nor through symbolic links, so another program's
    `.settings.json.tmp` survives even when OUT is a home folder. `subdirs` is kept for callers.

    Call it only while holding the folder's lock (`lock_output_dir`), so no live writer owns them.
    """
    removed: list[Path] = []
    if not out_dir.is_dir():
        return removed
    for folder, dirs, files in os.walk(out_dir, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not is_temp_name(name):
                continue
            p = Path(folder) / name
            try:
                if stat.S_ISREG(p.lstat().st_mode):
                    p.unlink()
                    removed.append(p)
            except OSError:
                pass
    return removed


class OutputDirLocked(Exception):
    """Another live process is writing into the same output folder."""


class ForeignLockFile(OSError):
    """OUT/.iapas.lock exists but is not a lock file iapas made (a link, a folder, or a file with other content)."""


LOCK_NAME = ".iapas.lock"
_PID = re.compile(rb"\s*\d{0,20}\s*")


def _open_lock(path: Path) -> int:
    """Open (or create) the lock file without following a symbolic link, and only when it is a regular file
    with a single name holding nothing but a process id: a planted link, hard link or foreign file is refused,
    never truncated."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        if path.is_symlink():
            raise ForeignLockFile(errno.ELOOP, "is a symbolic link, not iapas's lock file; remove it", str(path)) from None
        raise
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file"
    elif st.st_nlink != 1:
        problem = "has other names (a hard link)"
    elif st.st_size > 32 or not _PID.fullmatch(os.pread(fd, 64, 0)):
        problem = "holds something other than a process id"
    if problem:
        os.close(fd)
        raise ForeignLockFile(errno.EEXIST, f"{problem}, so it is not iapas's lock file; remove it", str(path))
    return fd


@contextmanager
def lock_output_dir(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT/.iapas.lock while writing; the OS drops it when the process dies,
    so a killed run never blocks the rerun, while two live runs into one folder are refused."""
    import fcntl  # fcntl: POSIX only

    out_dir.mkdir(parents=True, exist_ok=True)
    fd = _open_lock(out_dir / LOCK_NAME)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", errors="ignore").strip() or "?"
            raise OutputDirLocked(f"another iapas process (pid {holder}) is writing into {out_dir}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)


def mark_interrupted(out_dir: Path) -> None:
    """Set `interrupted: true` (and `complete: false`) in OUT/summary.json when a command stops on Ctrl-C or
    SIGTERM before its own summary said so (e.g. during Stage 1 of a rerun), so the folder never claims a
    finished run; a missing or unreadable summary is left alone."""
    path = out_dir / "summary.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return
    if isinstance(data, dict) and data.get("interrupted") is not True:
        data.update(interrupted=True, complete=False)
        try:
            atomic_write_json(path, data)
        except OSError:
            pass


@dataclass
class RunSummary:
    """Status of every input of a run; rewritten after each image so an interruption loses nothing."""

    out_dir: Path
    profile: str
    settings_digest: str
    context: str | None = None
    mode: str | None = None  # offline profile: "few-shot" (normal images) or "zero-shot" (images score each other)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    interrupted: bool = False
    threshold: float | None = None  # the image-score threshold of every verdict (iapas.verdict)
    threshold_rule: str | None = None  # how that threshold was set (context.thresholds.verdict_rule)
    kind: dict[str, Any] | None = None  # object / texture, and the evidence when chosen from the images
    setup_error: dict[str, Any] | None = None  # a run stopped before any image (e.g. missing models)

    def record(self, path: Path, name: str | None, status: str, error: str | None = None, **extra: Any) -> None:
        item: dict[str, Any] = {"path": display_path(path), "name": name, "status": status}
        if error:
            item["error"] = error
        item.update(extra)
        self.items[str(path)] = item

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [{"path": i["path"], "error": i["error"]} for i in self.items.values() if i["status"] == "failed"]

    def counts(self) -> dict[str, int]:
        return dict(Counter(i["status"] for i in self.items.values()))

    def verdicts(self) -> dict[str, int]:
        """How many processed images are `defect` and how many `ok`."""
        found = Counter(i.get("verdict") for i in self.items.values() if i["status"] == "ok")
        return {"defect": found.get("defect", 0), "ok": found.get("ok", 0)}

    def save(self) -> Path:
        return atomic_write_json(
            self.out_dir / "summary.json",
            {
                "profile": self.profile,
                "settings_digest": self.settings_digest,
                "context": self.context,
                **({"mode": self.mode} if self.mode else {}),
                "complete": not self.interrupted and not self.setup_error and all(i["status"] != "pending" for i in self.items.values()),
                "interrupted": self.interrupted,
                "status_counts": self.counts(),  # processing: ok (processed), failed, pending
                "threshold": None if self.threshold is None else round(float(self.threshold), 6),
                "verdict_counts": self.verdicts(),  # judgement of the processed images: defect, ok
                "threshold_rule": self.threshold_rule,
                **({"kind": self.kind} if self.kind else {}),
                "inputs": list(self.items.values()),
                "failures": self.failures,
                **({"setup_error": self.setup_error} if self.setup_error else {}),
            },
        )
