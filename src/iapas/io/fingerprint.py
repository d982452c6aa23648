"""Content fingerprints of input files, so cached Stage 1 contexts and results follow the files' content.

Names and modification times are not enough: normal images overwritten under the same names (or copied
with their old times) would silently reuse a stale Stage 1. The fingerprint hashes each file's bytes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes ('missing: ...' when it cannot be read, so a fix of the file counts as a change)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    except OSError as exc:
        return f"unreadable: {type(exc).__name__}"
    return h.hexdigest()


def files_fingerprint(paths: Iterable[Path]) -> str:
    """One short hash over each file's path, size and content, in the given order."""
    h = hashlib.sha256()
    for p in paths:
        try:
            size = Path(p).stat().st_size
        except OSError:
            size = -1
        h.update(f"{p}\0{size}\0{file_digest(Path(p))}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:24]
