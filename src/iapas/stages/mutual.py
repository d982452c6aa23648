"""Zero-shot mutual scoring (MuSc, ICLR 2024): each test image is scored against the other test images.

No normal image is needed. Defects are rare and differ from image to image, so a normal patch finds a
close match in almost every other image of the batch, while a defect patch finds one in none. For every
patch of image i and every reference image j, the distance to the nearest patch of j is computed;
the patch's score is the mean of the smallest `keep_fraction` of those distances over the references.
That statistic stays low for normal patches even when some references are defective themselves (a
defective reference only removes one of many good matches), and stays high for a defect, unless the
same defect repeats in more than `keep_fraction` of the references.

Batches are scored in interleaved chunks of `chunk` images (features of one chunk in memory at a time);
each image's references are drawn from its own chunk, at most `references` of them, with a fixed seed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_REFERENCES = 24
DEFAULT_KEEP_FRACTION = 0.3
DEFAULT_CHUNK = 128


@dataclass(frozen=True)
class MutualSettings:
    """How many references each image is scored against and how their distances are reduced."""

    references: int = DEFAULT_REFERENCES
    keep_fraction: float = DEFAULT_KEEP_FRACTION
    chunk: int = DEFAULT_CHUNK
    seed: int = 111

    def __post_init__(self) -> None:
        if self.references < 1:
            raise ValueError(f"references must be at least 1, got {self.references}")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in (0, 1], got {self.keep_fraction}")
        if self.chunk < 2:
            raise ValueError(f"chunk must be at least 2 images, got {self.chunk}")


def chunks(n: int, size: int) -> list[range]:
    """Split n images into near-equal, interleaved chunks of at most `size` (never a lone image).

    Chunk k holds images k, k + c, k + 2c, ... (c chunks): batches are often sorted by defect type
    (MTD's folders), and a chunk made of one defect type would make that defect common, not rare.

    Args:
        n: number of images; size: largest chunk.

    Returns:
        Index ranges (each a strided range) covering 0..n-1 once.
    """
    if n <= 0:
        return []
    count = max(1, -(-n // size))
    return [range(k, n, count) for k in range(count)]


def reference_indices(i: int, members: Sequence[int], references: int, rng: np.random.Generator) -> list[int]:
    """Up to `references` members other than i, drawn without replacement."""
    others = [m for m in members if m != i]
    if len(others) <= references:
        return others
    return sorted(rng.choice(others, size=references, replace=False).tolist())


def nearest_distances(queries: "torch.Tensor", reference: "torch.Tensor") -> "torch.Tensor":
    """Distance of each query row (n, C) to its nearest row of `reference` (m, C); returns (n,)."""
    import torch

    with torch.inference_mode():
        ref_sq = (reference * reference).sum(1)
        d2 = torch.addmm(ref_sq[None, :], queries, reference.t(), alpha=-2.0)
        d2.add_((queries * queries).sum(1, keepdim=True))
        return d2.min(dim=1).values.clamp_min_(0).sqrt_()


def mutual_distance(queries: "torch.Tensor", references: list["torch.Tensor"], keep_fraction: float) -> "torch.Tensor":
    """Per-patch mean of the smallest `keep_fraction` of its nearest-patch distances to each reference.

    Args:
        queries: (n, C) patch features of one image.
        references: patch features (m_j, C) of each reference image.
        keep_fraction: share of references (the closest) that the mean runs over; at least one.

    Returns:
        (n,) float32 distances.
    """
    import torch

    if not references:
        raise ValueError("mutual scoring needs at least one other image in the batch")
    per_ref = torch.stack([nearest_distances(queries, r) for r in references])  # (R, n)
    keep = max(1, int(np.ceil(keep_fraction * per_ref.shape[0])))
    return per_ref.sort(dim=0).values[:keep].mean(0)


def score_chunk(
    features: list[tuple["torch.Tensor", tuple[int, int]]], settings: MutualSettings, rng: np.random.Generator
) -> list[np.ndarray]:
    """Mutual distance grids of one chunk of images, each scored against the others of the chunk.

    Args:
        features: per image, (h*w, C) patch features and the (h, w) grid.
        settings: references per image and kept fraction.
        rng: draws the references when the chunk has more images than `settings.references` + 1.

    Returns:
        Per image, an (h, w) float32 distance grid.
    """
    members = list(range(len(features)))
    out = []
    for i in members:
        refs = reference_indices(i, members, settings.references, rng)
        q, grid = features[i]
        d = mutual_distance(q, [features[j][0] for j in refs], settings.keep_fraction)
        out.append(d.reshape(grid).numpy().astype(np.float32))
    return out


def mutual_scores(
    count: int,
    embed: Callable[[int], tuple["torch.Tensor", tuple[int, int]]],
    settings: MutualSettings,
) -> Iterator[tuple[int, np.ndarray]]:
    """Zero-shot distance grids of `count` images, chunk by chunk.

    Args:
        count: number of images in the batch.
        embed: image index -> ((h*w, C) patch features, (h, w) grid); called once per image.
        settings: references per image, kept fraction, chunk size and seed.

    Yields:
        (image index, (h, w) float32 distance grid), chunk by chunk.
    """
    rng = np.random.default_rng(settings.seed)
    for part in chunks(count, settings.chunk):
        grids = score_chunk([embed(i) for i in part], settings, rng)
        yield from zip(part, grids)
