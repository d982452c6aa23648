"""Issue 12, item 12: output files honour the umask (0666 & ~umask) instead of mkstemp's fixed 0600."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.io.atomic import atomic_write_bytes, atomic_write_image, atomic_write_json, atomic_write_npy


def test_item12_outputs_honour_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        for umask in (0o022, 0o002, 0o077, 0o027):
            os.umask(umask)
            folder = tmp_path / f"u{umask:03o}"
            ctx = Context(profile="offline", config=PipelineConfig())
            ctx.set_arrays(bank_features=np.zeros((2, 3), np.float32), bank_source=np.zeros(2, int))
            written = [
                atomic_write_bytes(folder / "a.bin", b"x"),
                atomic_write_json(folder / "a.json", {"a": 1}),
                atomic_write_npy(folder / "a.npy", np.zeros(3)),
                atomic_write_image(folder / "a.png", np.zeros((4, 4), np.uint8)),
                ctx.save(folder / "context.json"),
                folder / "context.bank.npz",
            ]
            for path in written:
                assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, (oct(umask), path.name)
            assert not list(folder.glob(".*.tmp"))
    finally:
        os.umask(old)
