"""Issue 12 item 7: with `-r 1` the threshold was calibrated in-sample (distance ~0), so 100% of every
image was flagged. Now one normal image is scored against its own flipped views."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from iapas.config import build_config
from iapas.pipeline import Pipeline

from _normals import FAST, write_crops


def test_one_normal_image_does_not_flag_every_clean_pixel(tmp_path: Path) -> None:
    write_crops(tmp_path / "normal", 1, seed=1)
    clean = write_crops(tmp_path / "clean", 3, seed=2)
    pipe = Pipeline(build_config(profile="offline", num_normal=1, **FAST))
    ctx = pipe.fit(tmp_path / "normal")
    flagged = [float(pipe.predict_one(p, ctx).mask.mean()) for p in clean]
    assert max(flagged) < 0.5, f"clean images flagged {flagged}"
    assert any("one normal image" in w for w in ctx.warnings)
