"""Normal-image sets for the calibration tests: crops of a real texture written as PNG files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from iapas.data.synthetic import draw_defect, load_texture, random_crop
from iapas.io.atomic import atomic_write_image

SIZE = 96
# one thread: with two, each small torch op waits for a second thread that a busy machine may not schedule
FAST = {"feature_size": 128, "reference_stages": [2, 3], "refine": "none", "threads": 1}


def write_crops(folder: Path, n: int, seed: int, texture: str = "brick", size: tuple[int, int] = (SIZE, SIZE)) -> list[Path]:
    rng = np.random.default_rng(seed)
    tex = load_texture(texture)
    return [atomic_write_image(folder / f"{texture}_{i:03d}.png", random_crop(tex, size, rng)) for i in range(n)]


def write_strip(folder: Path, name: str, texture: str = "gravel", height: int = 40, pieces: int = 3) -> Path:
    """One long strip (height x pieces*500 px) of another texture: an outlier among square crops."""
    rng = np.random.default_rng(9)
    tex = load_texture(texture)
    strip = np.hstack([random_crop(tex, (height, 500), rng) for _ in range(pieces)])
    return atomic_write_image(folder / name, strip)


def defect_image(folder: Path, seed: int, kind: str = "hole") -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    crop = random_crop(load_texture("brick"), (SIZE, SIZE), rng)
    img, mask = draw_defect(crop, kind, rng)
    return atomic_write_image(folder / f"defect_{kind}.png", img), mask
