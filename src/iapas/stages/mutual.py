"""Zero-shot mutual scoring (MuSc, ICLR 2024): each test image is scored against the other test images.

No normal image is needed. Defects are rare and differ from image to image, so a normal patch finds a
close match in almost every other image of the batch, while a defect patch finds one in none. For every
patch of image i and every reference image j, the distance to the nearest patch of j is computed;
the patch's score is the mean of the smallest `keep_fraction` of those distances over the references.
That statistic stays low for normal patches even when some references are defective themselves (a
defective reference only removes one of many good matches), and stays high for a defect, unless the
same defect repeats in more than `keep_fraction` of the references.

References come from a pool of up to 2 x `references` images spread evenly over the whole batch (a
batch sorted by defect type, like MTD's folders, still gives every image references of every kind);
each image draws its own `references` from the pool with a seed of its own, so its score does not depend
on how the batch is cut. The pool's features stay in memory; the other images are embedded in
consecutive chunks of `chunk` images, so memory is bounded by pool + chunk, whatever the batch size.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from iapas.stages.position import combine, position_distance

if TYPE_CHECKING:
    import torch  # torch: heavy, loaded only when a model runs


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
    """Split n images into consecutive, near-equal chunks of at most `size`.

    Args:
        n: number of images; size: largest chunk.

    Returns:
        Consecutive index ranges covering 0..n-1.
    """
    if n <= 0:
        return []
    count = max(1, -(-n // size))
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def reference_pool(n: int, references: int) -> list[int]:
    """Up to 2 x `references` image indices spread evenly over 0..n-1 (all of them for small batches)."""
    size = min(n, 2 * references)
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, size)}) if size > 0 else []


def reference_indices(i: int, pool: Sequence[int], references: int, seed: int) -> list[int]:
    """Up to `references` pool members other than i, drawn with a seed of image i's own."""
    others = [m for m in pool if m != i]
    if len(others) <= references:
        return others
    rng = np.random.default_rng([seed, i])
    return sorted(rng.choice(others, size=references, replace=False).tolist())


def nearest_distances(queries: "torch.Tensor", reference: "torch.Tensor") -> "torch.Tensor":
    """Distance of each query row (n, C) to its nearest row of `reference` (m, C); returns (n,)."""
    import torch  # torch: heavy, loaded only when a model runs


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
    import torch  # torch: heavy, loaded only when a model runs


    if not references:
        raise ValueError("mutual scoring needs at least one other image in the batch")
    return mean_of_closest(torch.stack([nearest_distances(queries, r) for r in references]), keep_fraction)


def position_mutual_distance(query: "torch.Tensor", references: "torch.Tensor", keep_fraction: float,
                             window: int) -> "torch.Tensor":
    """Like `mutual_distance`, but each reference is searched only within +-window cells of the patch's place.

    Args:
        query: (h, w, C) features of one image.
        references: (R, h, w, C) features of its reference images, same grid.
        keep_fraction: share of references (the closest) averaged.
        window: half-size of the search window in cells.

    Returns:
        (h, w) float32 distances.
    """
    return mean_of_closest(position_distance(query, references, window), keep_fraction)


def mean_of_closest(per_ref: "torch.Tensor", keep_fraction: float) -> "torch.Tensor":
    """Mean over the closest `keep_fraction` of the references (at least one) of each patch's distance.

    Args:
        per_ref: (R, ...) distances, one row per reference image.
        keep_fraction: share of references (the closest) averaged.

    Returns:
        (...) distances.
    """
    keep = max(1, int(np.ceil(keep_fraction * per_ref.shape[0])))
    return per_ref.sort(dim=0).values[:keep].mean(0)


def score_image(
    i: int, features: tuple["torch.Tensor", tuple[int, int]], pool: dict[int, "torch.Tensor"], settings: MutualSettings,
    positions: tuple[int, str] | None = None,
) -> np.ndarray:
    """Mutual distance grid of image i against its references from the pool.

    Args:
        i: the image's index in the batch (never its own reference).
        features: its (h*w, C) patch features and (h, w) grid.
        pool: index -> (m, C) patch features of the reference pool.
        settings: references per image, kept fraction, seed.
        positions: (window, combine) to compare patches only with the references' patches at the same place
            (aligned batches, every image on one grid; stages.position), None for the whole images.

    Returns:
        (h, w) float32 distances.
    """
    import torch  # torch: heavy, loaded only when a model runs


    refs = reference_indices(i, sorted(pool), settings.references, settings.seed)
    q, grid = features
    d = mutual_distance(q, [pool[j] for j in refs], settings.keep_fraction).reshape(grid).numpy().astype(np.float32)
    if positions is None:
        return d
    window, how = positions
    stacked = torch.stack([pool[j].reshape(*grid, -1) for j in refs])
    p = position_mutual_distance(q.reshape(*grid, -1), stacked, settings.keep_fraction, window).numpy().astype(np.float32)
    return combine(d, p, how).astype(np.float32)


def mutual_scores(
    count: int,
    embed: Callable[[int], tuple["torch.Tensor", tuple[int, int]]],
    settings: MutualSettings,
) -> Iterator[tuple[int, np.ndarray]]:
    """Zero-shot distance grids of `count` images, in index order.

    Args:
        count: number of images in the batch.
        embed: image index -> ((h*w, C) patch features, (h, w) grid).
        settings: references per image, kept fraction, chunk size and seed.

    Yields:
        (image index, (h, w) float32 distance grid).
    """
    pool_feats = {j: embed(j) for j in reference_pool(count, settings.references)}
    pool = {j: f[0] for j, f in pool_feats.items()}
    for part in chunks(count, settings.chunk):
        feats = {i: pool_feats[i] if i in pool_feats else embed(i) for i in part}
        for i in part:
            yield i, score_image(i, feats[i], pool, settings)
