"""MTD-like synthetic tiles: a grainy grey surface (scikit-image's gravel texture, flattened to the grey
level and contrast of a magnetic tile) with dark round blowholes whose masks are exact. Used by the
inspector-output tests (issue 14)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def tile(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A defect-free tile (uint8, HxW): gravel grain at a third of its contrast around grey 110-125."""
    from iapas.data.synthetic import load_texture, random_crop

    crop = random_crop(load_texture("gravel"), (size, size), rng).astype(np.float32)
    return np.clip(rng.uniform(110, 125) + (crop - crop.mean()) / 3.0, 0, 255).astype(np.uint8)


def blowhole(img: np.ndarray, rng: np.random.Generator, radius: float = 9.0) -> tuple[np.ndarray, np.ndarray]:
    """The tile with a dark round blowhole; returns (image, exact bool mask)."""
    h, w = img.shape
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    yy, xx = np.mgrid[:h, :w]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    out = img.astype(np.float32)
    out[mask] = 30.0 + rng.uniform(0, 12, int(mask.sum()))
    return out.astype(np.uint8), mask


def write_tiles(root: Path, n_normal: int, defects: dict[str, bool], seed: int = 7, size: int = 128) -> dict[str, np.ndarray]:
    """NORMAL images in root/normal, and each relative path in `defects` (True: with a blowhole) under
    root/check; returns the ground-truth mask per relative path."""
    rng = np.random.default_rng(seed)
    (root / "normal").mkdir(parents=True, exist_ok=True)
    for i in range(n_normal):
        Image.fromarray(tile(rng, size)).save(root / "normal" / f"good_{i:02d}.png")
    masks = {}
    for rel, bad in defects.items():
        img = tile(rng, size)
        mask = np.zeros(img.shape, bool)
        if bad:
            img, mask = blowhole(img, rng)
        dest = root / "check" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(dest)
        masks[rel] = mask
    return masks
