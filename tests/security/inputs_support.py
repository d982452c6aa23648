"""Shared by tests/security/test_inputs_*.py: the CLI apps in-process with a tiny real profile."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from PIL import Image
from typer.testing import CliRunner



def invoke(app: typer.Typer, *args: str | Path) -> tuple[int, str]:
    """Exit code and stderr+stdout of one command; any traceback fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def photo(path: Path, seed: int = 0, size: tuple[int, int] = (64, 48)) -> Path:
    """A textured RGB photo (JPEG or PNG by suffix)."""
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 200 + 30).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def normals(folder: Path, n: int = 4) -> list[Path]:
    return [photo(folder / f"good_{i:02d}.png", seed=i) for i in range(n)]


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def context(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
