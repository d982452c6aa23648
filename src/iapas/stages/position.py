"""Position-aware reference for aligned objects: each patch is compared with normal patches at its own place.

Why: a global patch bank answers "does this patch look like any normal patch anywhere?". On an aligned
object (a board, a connector, a fixed-pose part) a moved, missing, swapped or doubled part is made of
patches that are perfectly normal somewhere else, so the global bank scores them as normal. Comparing a
test patch only with the normal patches in a window of +-`window` feature cells around the same grid
position (every image resized to the same network size) sees them.

It only makes sense when the normal images are aligned. That is decided from the normal images alone,
leave-one-out: for each normal image, the share of its patches whose closest match among the other normal
images (anywhere) lies outside their same-position window. Aligned parts find their counterpart at the
same place (MVTec bottle: 6%, the synthetic board: 25%); textures and shifted or rotated parts find it
elsewhere about as often as not (MTD tiles: 46-60%, brushed strips: 38-54%). The median share over the
normal images is compared with `position_ratio`; the decision and its evidence go into the context.

Zero-shot mode uses the same rule with the batch's other images as the positions' references.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch  # torch: heavy, loaded only when a model runs


POSITION_MODES = ("auto", "on", "off")
POSITION_COMBINES = ("position", "mean", "max")
TIE = 1e-3  # relative margin under which a same-position match counts as the best match


@dataclass(frozen=True)
class Alignment:
    """Whether the position-aware reference is used, and the evidence it was decided on."""

    aligned: bool
    ratio: float | None  # median over images of the share of patches matched better elsewhere; None: not measured
    image_ratios: tuple[float, ...]
    grid: tuple[int, int] | None  # feature grid (h, w) every image is brought to
    size: tuple[int, int] | None  # network input (w, h) every image is resized to
    rule: str

    def to_json(self) -> dict[str, Any]:
        return {"aligned": self.aligned, "ratio": None if self.ratio is None else round(self.ratio, 4),
                "image_ratios": [round(v, 4) for v in self.image_ratios],
                "grid": None if self.grid is None else list(self.grid),
                "size": None if self.size is None else list(self.size), "rule": self.rule}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> "Alignment | None":
        if not d:
            return None
        return cls(aligned=bool(d.get("aligned")), ratio=d.get("ratio"),
                   image_ratios=tuple(float(v) for v in d.get("image_ratios", ())),
                   grid=tuple(d["grid"]) if d.get("grid") else None,  # type: ignore[arg-type]
                   size=tuple(d["size"]) if d.get("size") else None, rule=str(d.get("rule", "")))  # type: ignore[arg-type]


def shifted(features: "torch.Tensor", dy: int, dx: int) -> "torch.Tensor":
    """Grid features (n, h, w, C) moved by (dy, dx) cells; cells shifted in from outside are +inf.

    Args:
        features: (n, h, w, C) float tensor.
        dy, dx: shift in cells (positive: the value at (y, x) comes from (y + dy, x + dx)).

    Returns:
        (n, h, w, C) tensor.
    """
    import torch  # torch: heavy, loaded only when a model runs


    n, h, w, c = features.shape
    out = torch.full_like(features, float("inf"))
    (ys, yd), (xs, xd) = _overlap(dy, h), _overlap(dx, w)
    out[:, yd, xd] = features[:, ys, xs]
    return out


def _overlap(d: int, n: int) -> tuple[slice, slice]:
    """(source, destination) slices of a shift by `d` cells along an axis of `n` cells."""
    return (slice(d, n), slice(0, n - d)) if d >= 0 else (slice(0, n + d), slice(-d, n))


def position_distance(query: "torch.Tensor", references: "torch.Tensor", window: int = 1) -> "torch.Tensor":
    """Per reference image, each query cell's distance to the nearest reference cell within +-window.

    Args:
        query: (h, w, C) features of one image.
        references: (n, h, w, C) features of the reference images, same grid.
        window: half-size of the square search window, in cells.

    Returns:
        (n, h, w) float distances (the nearest match in each reference separately).
    """
    import torch  # torch: heavy, loaded only when a model runs


    _, h, w, _ = references.shape
    # on the overlapping slices only: no shifted copy of the references per offset (inf where the window leaves the grid)
    best = torch.full(references.shape[:3], float("inf"), dtype=references.dtype, device=references.device)
    with torch.inference_mode():
        for dy in range(-window, window + 1):
            ys, yd = _overlap(dy, h)
            for dx in range(-window, window + 1):
                xs, xd = _overlap(dx, w)
                d2 = ((references[:, ys, xs] - query[None, yd, xd]) ** 2).sum(-1)
                best[:, yd, xd] = torch.minimum(best[:, yd, xd], d2)
        return best.clamp_min_(0).sqrt_()


def nearest_position_distance(query: "torch.Tensor", references: "torch.Tensor", window: int = 1) -> "torch.Tensor":
    """(h, w) distance of each query cell to its nearest same-position cell over all reference images."""
    return position_distance(query, references, window).min(dim=0).values


def decide(global_maps: list[np.ndarray], position_maps: list[np.ndarray], threshold: float, mode: str,
           grid: tuple[int, int] | None, size: tuple[int, int] | None) -> Alignment:
    """The alignment decision from leave-one-out grids of the normal images.

    Args:
        global_maps: per normal image, (h, w) distances to the global bank without that image.
        position_maps: per normal image, (h, w) same-position distances to the other normal images.
        threshold: aligned when the median share of patches matched better elsewhere is at most this.
        mode: "auto" (decide), "on" (use it whatever the ratio), "off".
        grid, size: the common feature grid and network size.

    Returns:
        The decision with its evidence.
    """
    ratios = []
    for g, p in zip(global_maps, position_maps):
        # share of patches whose closest match in the other images lies outside their window
        ratios.append(float((p.ravel() > g.ravel() * (1 + TIE) + 1e-6).mean()))
    ratio = float(np.median(ratios)) if ratios else None
    if mode == "off":
        return Alignment(False, ratio, tuple(ratios), grid, size, "off (position_reference = off)")
    if mode == "on":
        return Alignment(True, ratio, tuple(ratios), grid, size, "on (position_reference = on)")
    aligned = ratio is not None and ratio <= threshold
    rule = (f"auto: median over the normal images of the share of patches whose closest match in the other normal "
            f"images lies outside their +-window cells = {ratio:.3f} {'<=' if aligned else '>'} {threshold:g}: parts are "
            + ("aligned, each patch is compared with normal patches at its own place" if aligned
               else "not aligned enough, the global bank is used")) if ratio is not None else "auto: not measured"
    return Alignment(aligned, ratio, tuple(ratios), grid, size, rule)


def combine(global_d: np.ndarray, position_d: np.ndarray, how: str) -> np.ndarray:
    """One distance grid from the global and the same-position grids (same shape)."""
    if how == "position":
        return position_d
    if how == "mean":
        return 0.5 * (global_d + position_d)
    if how == "max":
        return np.maximum(global_d, position_d)
    raise ValueError(f"unknown position combine {how!r}; allowed: {', '.join(POSITION_COMBINES)}")


def unaligned(reason: str) -> Alignment:
    """A decision not to use positions, for a reason other than the ratio (one image, unequal grids)."""
    return Alignment(False, None, (), None, None, reason)
