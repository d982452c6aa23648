"""A small synthetic inspection set from real textures that ship with scikit-image.

Why: the demo and the tests need real-looking surfaces with exactly known defect masks, on a machine
with no dataset and no network. Normal crops and test crops are random crops of the same texture
(brick, grass, gravel), as on a production line; test crops get drawn defects (scratch, spot, hole, cut, stain) whose masks are
exact because pixels are changed only inside the mask.

Layout written (the `folder` layout, one folder per category):
    ROOT/<category>/normal/normal_000.png ...            defect-free images
    ROOT/<category>/test/test_000.png ...                 images to check (some defect-free)
    ROOT/<category>/masks/test_000.png ...                ground truth of every test image (0 / 255),
                                                          same name as its test image; all zero if clean
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter
from skimage import data, draw

from iapas.io.atomic import atomic_write_image, atomic_write_json

TEXTURES = ("brick", "grass", "gravel")
DEFECTS = ("scratch", "spot", "hole", "cut", "stain")


def load_texture(name: str) -> np.ndarray:
    """A grayscale texture from skimage.data (bundled with the wheel, no download).

    Args:
        name: the skimage.data function name (e.g. "brick").
    Returns:
        (H, W) uint8 texture.
    """
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; available: {', '.join(TEXTURES)}")
    img = getattr(data, name)()
    return img if img.ndim == 2 else (img[..., :3].mean(-1)).astype(np.uint8)


def random_crop(texture: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random (h, w) crop of the texture."""
    h, w = size
    th, tw = texture.shape
    y = int(rng.integers(0, th - h + 1))
    x = int(rng.integers(0, tw - w + 1))
    return texture[y : y + h, x : x + w].copy()


def _polyline_mask(shape: tuple[int, int], rng: np.random.Generator, width: int, bends: int) -> np.ndarray:
    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    y, x = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    angle = rng.uniform(0, np.pi)
    length = rng.uniform(0.25, 0.45) * min(h, w)
    for _ in range(bends):
        angle += rng.uniform(-0.5, 0.5)
        y2 = float(np.clip(y + np.sin(angle) * length / bends, 2, h - 3))
        x2 = float(np.clip(x + np.cos(angle) * length / bends, 2, w - 3))
        rr, cc = draw.line(int(y), int(x), int(y2), int(x2))
        mask[rr, cc] = True
        y, x = y2, x2
    if width > 1:
        mask = binary_dilation(mask, iterations=width // 2)
    return mask


def draw_defect(img: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The image with one synthetic defect drawn in it; pixels change only inside the returned mask.

    Args:
        img: (H, W) uint8 texture.
        kind: the defect kind to draw.
        rng: the generator every random choice comes from.
    Returns:
        The (H, W) uint8 image with the defect and its exact (H, W) bool mask.
    """
    h, w = img.shape
    out = img.astype(np.float32)
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    s = min(h, w)
    if kind == "scratch":
        mask = _polyline_mask((h, w), rng, width=int(rng.integers(1, 3)), bends=4)
        out[mask] = 235.0 if out.mean() < 128 else 20.0
    elif kind == "cut":
        mask = _polyline_mask((h, w), rng, width=3, bends=1)
        out[mask] = out[mask] * 0.15
    elif kind == "spot":
        mask = np.zeros((h, w), dtype=bool)
        rr, cc = draw.disk((cy, cx), rng.uniform(0.03, 0.06) * s, shape=(h, w))
        mask[rr, cc] = True
        out[mask] = 250.0 if out.mean() < 128 else 10.0
    elif kind == "hole":
        mask = np.zeros((h, w), dtype=bool)
        rr, cc = draw.ellipse(cy, cx, rng.uniform(0.05, 0.09) * s, rng.uniform(0.05, 0.09) * s, shape=(h, w),
                              rotation=rng.uniform(0, np.pi))
        mask[rr, cc] = True
        out[mask] = 5.0 + rng.uniform(0, 10, size=int(mask.sum()))
    elif kind == "stain":
        blob = np.zeros((h, w), dtype=np.float32)
        rr, cc = draw.ellipse(cy, cx, rng.uniform(0.08, 0.14) * s, rng.uniform(0.05, 0.1) * s, shape=(h, w),
                              rotation=rng.uniform(0, np.pi))
        blob[rr, cc] = 1.0
        alpha = gaussian_filter(blob, sigma=2.0)
        mask = alpha > 0.25
        alpha = np.where(mask, np.clip(alpha * 1.2, 0, 0.9), 0.0)
        tone = 30.0 if out.mean() > 100 else 200.0
        out = out * (1 - alpha) + tone * alpha
    else:
        raise ValueError(f"unknown defect {kind!r}; available: {', '.join(DEFECTS)}")
    return np.clip(out, 0, 255).astype(np.uint8), mask


@dataclass
class SyntheticCategory:
    name: str
    root: Path
    normal: list[Path] = field(default_factory=list)
    test: list[Path] = field(default_factory=list)
    masks: list[Path] = field(default_factory=list)  # one per test image (all zero when clean)
    defects: list[str] = field(default_factory=list)  # defect kind per test image ("good" if clean)

    def add_normal(self, img: np.ndarray) -> None:
        """Write the next normal image (normal/normal_NNN.png)."""
        self.normal.append(atomic_write_image(self.root / "normal" / f"normal_{len(self.normal):03d}.png", img))

    def add_test(self, img: np.ndarray, mask: np.ndarray, kind: str) -> None:
        """Write the next test image and its mask (test/ and masks/test_NNN.png), with its defect kind.

        Args:
            img: (H, W) or (H, W, 3) uint8 image.
            mask: (H, W) bool defect mask (all False when clean).
            kind: the defect kind, "good" when clean.
        """
        name = f"test_{len(self.test):03d}.png"
        self.test.append(atomic_write_image(self.root / "test" / name, img))
        self.masks.append(atomic_write_image(self.root / "masks" / name, (mask * 255).astype(np.uint8)))
        self.defects.append(kind)

    def write_defects(self) -> None:
        """defects.json: test file name -> defect kind (what readers and the demo's truth read)."""
        atomic_write_json(self.root / "defects.json", {p.name: k for p, k in zip(self.test, self.defects)})


def make_category(
    root: str | Path,
    texture: str,
    n_normal: int = 10,
    n_test: int = 10,
    size: tuple[int, int] = (160, 160),
    anomalous_fraction: float = 0.7,
    seed: int = 0,
) -> SyntheticCategory:
    """Write one texture category in the folder layout; returns the paths written."""
    rng = np.random.default_rng(seed)
    tex = load_texture(texture)
    cat = SyntheticCategory(name=texture, root=Path(root) / texture)
    for _ in range(n_normal):
        cat.add_normal(random_crop(tex, size, rng))
    n_bad = int(round(anomalous_fraction * n_test))
    for i in range(n_test):
        crop = random_crop(tex, size, rng)
        if i < n_bad:
            kind = DEFECTS[i % len(DEFECTS)]
            crop, mask = draw_defect(crop, kind, rng)
        else:
            kind, mask = "good", np.zeros(crop.shape, dtype=bool)
        cat.add_test(crop, mask, kind)
    cat.write_defects()
    return cat


def make_dataset(
    root: str | Path,
    textures: tuple[str, ...] = TEXTURES,
    n_normal: int = 10,
    n_test: int = 10,
    size: tuple[int, int] = (160, 160),
    seed: int = 0,
) -> list[SyntheticCategory]:
    """All categories under `root` (one folder each)."""
    return [make_category(root, t, n_normal, n_test, size, seed=seed + i) for i, t in enumerate(textures)]
