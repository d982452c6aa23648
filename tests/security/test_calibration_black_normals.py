"""Issue 12 item 7: all-black normal images flagged 100% of every image with no word of warning.
Near-constant normal images are now named in a warning that `prompts` and `run` print."""
from __future__ import annotations

import pytest

import os
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from iapas.cli import run as run_cmd
from iapas.io.atomic import atomic_write_image
from cli_apps import command_app

from _normals import SIZE


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_black_normal_images_are_warned_about_on_the_console(tmp_path: Path) -> None:
    for i in range(3):
        atomic_write_image(tmp_path / "normal" / f"black_{i}.png", np.zeros((SIZE, SIZE), dtype=np.uint8))
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("feature_size: 128\nreference_stages: [2, 3]\nrefine: none\nthreads: 1\n")
    app = command_app(run_cmd)
    result = CliRunner().invoke(app, ["prompts", "--normal", str(tmp_path / "normal"), "--out",
                                      str(tmp_path / "ctx.json"), "--profile", "offline", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning" in text and "nearly constant" in text, result.output
