"""The input files of `run`, `prompts` and `segment`, checked before any model loads, with what was left out said.

`--normal` and `--images` folders are listed without the run's own output folder, hidden files and
mask-like files (ground-truth masks kept beside the photos), and filtered by `--include`/`--exclude`.
Every kind of left-out file is named on the console; an input that leaves nothing to process is refused
here (exit 2) with the reason, never after Stage 1 has run.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.markup import escape

from iapas.cli.common import err_console
from iapas.cli.console import printable, safe
from iapas.errors import SettingsError
from iapas.io.images import SUPPORTED_TEXT
from iapas.io.listing import HIDDEN, MASK, OUTPUT, PATTERN, InputListing, list_inputs

MASK_RULE = "names ending _mask/_label/_GT, or binary single-channel images sharing a photo's name"
_SHOWN = 3  # file names quoted per warning


def _names(paths: Sequence[Path]) -> str:
    shown = ", ".join(safe(p.name) for p in paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def report_skipped(listing: InputListing, flag: str) -> None:
    """One console line per kind of file left out of `flag`'s folders."""
    skipped = listing.skipped
    if skipped.get(OUTPUT):
        err_console.print(f"note: {flag}: left out the output folder {safe(skipped[OUTPUT][0])} "
                          "(a run never reads its own outputs)", soft_wrap=True)
    if skipped.get(MASK):
        n = len(skipped[MASK])
        err_console.print(f"[yellow]warning:[/] {flag}: skipped {n} mask-like file{'s' * (n != 1)} "
                          f"({MASK_RULE}): {_names(skipped[MASK])}", soft_wrap=True)
    if skipped.get(HIDDEN):
        n = len(skipped[HIDDEN])
        err_console.print(f"note: {flag}: skipped {n} hidden file{'s' * (n != 1)} (name starts with '.'): "
                          f"{_names(skipped[HIDDEN])}", soft_wrap=True)
    if skipped.get(PATTERN):
        n = len(skipped[PATTERN])
        err_console.print(f"note: {flag}: --include/--exclude left out {n} file{'s' * (n != 1)}", soft_wrap=True)


def _why_empty(folder: Path, listing: InputListing, out: Path | None) -> str:
    """Why a given folder yielded no image, in words that say what to change (plain text, no markup)."""
    if folder in listing.skipped.get(OUTPUT, []):
        return f"is the output folder --out {printable(out)} or inside it (a run never reads its own outputs)"
    left = {k: sum(1 for p in v if p.is_relative_to(folder)) for k, v in listing.skipped.items()}
    left = {k: n for k, n in left.items() if n}
    if left:
        return "holds no usable image: every image was left out (" + ", ".join(f"{n} {k}" for k, n in left.items()) + ")"
    return f"holds no images ({SUPPORTED_TEXT})"


def list_checked(
    paths: Sequence[Path], flag: str, out: Path | None, include: Sequence[str] = (), exclude: Sequence[str] = (),
) -> list[Path]:
    """The entries to read for `flag`; refuses (SettingsError) when no file is left to process.

    A given folder left empty beside other inputs stays an entry (recorded as failed) after a warning.
    """
    missing = [Path(p) for p in paths if not _exists(Path(p))]
    if paths and len(missing) == len(paths):  # nothing given exists: refuse before any model loads
        raise SettingsError("; ".join(f"{flag} {printable(p)} does not exist" for p in missing)
                            + " (check the path; inputs are image files or folders)")
    for p in missing:  # beside inputs that exist: recorded as a failed entry, the rest goes on
        err_console.print(f"[yellow]warning:[/] {flag} {safe(p)} does not exist", soft_wrap=True)
    listing = list_inputs(paths, out_dirs=[out] if out is not None else (), include=include, exclude=exclude,
                          skip_masks=True)
    report_skipped(listing, flag)
    files = listing.files
    if not files:
        if not listing.empty_folders:
            raise SettingsError(f"no images given: {flag} takes image files and/or folders")
        raise SettingsError("; ".join(f"{flag} {printable(f)} {_why_empty(f, listing, out)}" for f in listing.empty_folders))
    for folder in listing.empty_folders:  # kept as an entry: it is recorded as failed, the rest goes on
        err_console.print(f"[yellow]warning:[/] {flag} {safe(folder)} {escape(_why_empty(folder, listing, out))}",
                          soft_wrap=True)
    return listing.paths


def _exists(path: Path) -> bool:
    """True for an existing entry, a broken symlink included (it fails later with its own reason)."""
    return path.exists() or path.is_symlink()


def warn_few_normals(found: int, r: int, normal: Path) -> None:
    """Stage 1 samples r normal images; with fewer it uses all, and the user should know."""
    if found < r:
        err_console.print(f"[yellow]warning:[/] --normal {safe(normal)} holds {found} usable image"
                          f"{'s' * (found != 1)}, fewer than r = {r}; Stage 1 uses all {found} "
                          "(more normal images give a steadier reference)", soft_wrap=True)
