"""One mask reader (issue 13): runs, reports and dataset readers binarise masks by the same rule."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from iapas.data.base import mask_array
from iapas.io.images import load_mask


def test_faint_fringe_is_background_and_colour_masks_count_by_brightest_channel(tmp_path: Path) -> None:
    level = np.zeros((6, 8), np.uint8)
    level[2:4, 2:5] = 255
    level[1, 2:5] = 40  # MTD-like compression fringe next to the defect
    Image.fromarray(level).save(tmp_path / "fringe.png")
    red = np.zeros((6, 8, 3), np.uint8)
    red[2:4, 2:5, 0] = 255  # a pure red mask: luminance 76, brightest channel 255
    Image.fromarray(red).save(tmp_path / "red.png")
    Image.fromarray((level > 100).astype(np.uint8)).save(tmp_path / "ones.png")  # 0/1 encoding
    for name in ("fringe.png", "red.png", "ones.png"):
        a, b = load_mask(tmp_path / name), mask_array(tmp_path / name)
        assert a.sum() == 6 and np.array_equal(a, b), name
