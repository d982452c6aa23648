"""A synthetic 'object' line for tests: the same part photographed in place (a bright washer with a notch on a
dark belt), small shifts, lighting and noise from part to part; defects drawn on the part."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import draw

from iapas.data.synthetic import draw_defect
from iapas.io.atomic import atomic_write_image

OBJECT_DEFECTS = ("hole", "spot", "stain", "cut")


def object_image(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One good part: (size, size) uint8."""
    img = np.full((size, size), 40.0, dtype=np.float32)
    cy, cx = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    rr, cc = draw.disk((cy, cx), 0.36 * size, shape=img.shape)
    img[rr, cc] = 170.0
    rr, cc = draw.disk((cy, cx), 0.12 * size, shape=img.shape)
    img[rr, cc] = 60.0  # the hole of the washer
    rr, cc = draw.rectangle((cy - 0.36 * size, cx - 0.04 * size), extent=(0.1 * size, 0.08 * size), shape=img.shape)
    img[rr, cc] = 40.0  # a notch at the top: the part has an orientation
    img = img * rng.uniform(0.96, 1.04) + rng.normal(0, 3.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_objects(folder: Path, n: int, seed: int, defective: int = 0, size: int = 128) -> list[tuple[Path, str]]:
    """n parts under `folder`, the first `defective` with a drawn defect; returns (path, defect kind or 'good')."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = object_image(rng, size)
        kind = "good"
        if i < defective:
            kind = OBJECT_DEFECTS[i % len(OBJECT_DEFECTS)]
            img, _ = draw_defect(img, kind, rng)
        out.append((atomic_write_image(folder / f"{kind}_{i:03d}.png", img), kind))
    return out
