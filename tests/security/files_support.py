"""Shared pieces of the local-file tests: a CLI app whose profile is MeanDiffProfile, tiny image folders."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers

from cli_apps import command_app  # noqa: E402
from fake_profile import use_mean_diff  # noqa: E402
from iapas.cli import run as run_cmd  # noqa: E402


def images(folder: Path, n: int, grey: int = 60, names: list[str] | None = None) -> Path:
    """`n` small grey PNGs (or one per name in `names`) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names or [f"i{k}.png" for k in range(n)]):
        Image.fromarray(np.full((20, 20, 3), (grey + 20 * i) % 256, np.uint8)).save(folder / name)
    return folder


def run_app(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    use_mean_diff(monkeypatch)
    return command_app(run_cmd)


def invoke(app, *args: object) -> tuple[int, str]:  # noqa: ANN001
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.stderr
    return result.exit_code, result.stderr
