"""Few-normal-shot visual reference scoring: a patch memory bank of normal images and kNN distance.

Why this design (first measured on MTD, see bench/bench_mtd.py; the sizes and stages in use are the
presets per kind, `iapas.settings.KIND_PRESETS`, chosen in docs/offline-tuning.md): deep ImageNet
features (stages 5-6, stride 32) separated MTD defects from normal surface better than stages 2-4; averaging each feature over its 3x3
neighbourhood (as PatchCore does) makes patches robust to small shifts; the bank of r normal images is
small, so exact nearest-neighbour search is affordable and no coreset is needed; flips/rotations of
the normal images make the bank cover orientations of textures. Images keep their aspect ratio
(short side = feature_size) so thin defects on long strips are not squashed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from iapas.settings import ReferenceSettings  # noqa: F401 - defined with every setting; re-exported for stages
from iapas.stages.segment_pooling import refine_map

if TYPE_CHECKING:
    import torch  # torch: heavy, loaded only when a model runs

    from iapas.models.backbone import LiteFeatures

AUGMENTATIONS = ("none", "hflip", "vflip", "rot180", "rot90", "rot270", "dark", "bright")
GAIN_VIEWS = {"dark": 0.8, "bright": 1.25}  # brightness views of the normal images (tiles lit unevenly)
PHOTOMETRIC = ("none", "gain", "standardize")
AUTO_AUGMENT = ("none", "hflip", "vflip", "rot180")
MIN_CORESET_ROWS = 2048  # a coreset never shrinks a bank below this many patches (small images, one normal image)


def network_size(width: int, height: int, settings: ReferenceSettings) -> tuple[int, int]:
    """(w, h) fed to the backbone: short side = feature_size, aspect kept, multiples of 32."""
    short, long_ = min(width, height), max(width, height)
    scale = settings.feature_size / short
    if long_ * scale > settings.max_long_side:
        scale = settings.max_long_side / long_
    def r32(v: float) -> int:
        return max(32, int(round(v / 32.0)) * 32)
    return r32(width * scale), r32(height * scale)


def prepare(rgb: np.ndarray, settings: ReferenceSettings) -> np.ndarray:
    """Resize an image to its network size (bilinear, aspect kept, sides multiples of 32).

    Args:
        rgb: (H, W, 3) uint8 image.
        settings: the reference settings (network size rules).
    Returns:
        (h, w, 3) uint8 image at the network size.
    """
    h, w = rgb.shape[:2]
    return prepare_at(rgb, network_size(w, h, settings))


def prepare_at(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB uint8 image to exactly `size` = (w, h) (bilinear): every image alike, for positions."""
    h, w = rgb.shape[:2]
    if tuple(size) == (w, h):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(tuple(size), Image.Resampling.BILINEAR))


def common_size(rgbs: list[np.ndarray], settings: ReferenceSettings) -> tuple[int, int]:
    """The network size (w, h) every image is resized to for the position-aware reference: that of the
    median width and height of `rgbs`."""
    w = int(np.median([r.shape[1] for r in rgbs]))
    h = int(np.median([r.shape[0] for r in rgbs]))
    return network_size(w, h, settings)


def augment(rgb: np.ndarray, name: str) -> np.ndarray:
    """One view of an image: a flip, a rotation or a gain change.

    Args:
        rgb: (H, W, 3) uint8 image.
        name: one of AUGMENTATIONS.
    Returns:
        (H, W, 3) uint8 view ((W, H, 3) for rot90 / rot270).
    """
    ops = {
        "none": lambda a: a,
        "hflip": lambda a: a[:, ::-1],
        "vflip": lambda a: a[::-1],
        "rot180": lambda a: a[::-1, ::-1],
        "rot90": lambda a: np.rot90(a, 1),
        "rot270": lambda a: np.rot90(a, 3),
        "dark": lambda a: np.clip(a.astype(np.float32) * GAIN_VIEWS["dark"], 0, 255).astype(np.uint8),
        "bright": lambda a: np.clip(a.astype(np.float32) * GAIN_VIEWS["bright"], 0, 255).astype(np.uint8),
    }
    if name not in ops:
        raise ValueError(f"unknown augmentation {name!r}; allowed: {', '.join(AUGMENTATIONS)}")
    return np.ascontiguousarray(ops[name](rgb))


def embed(backbone: "LiteFeatures", rgb: np.ndarray, settings: ReferenceSettings) -> tuple["torch.Tensor", tuple[int, int]]:
    """Patch features of an already `prepare`d image: (h*w, C) float32 and the grid (h, w)."""
    return embed_scales(backbone, rgb, [settings])[0]


def embed_scales(backbone: "LiteFeatures", rgb: np.ndarray,
                 settings: list[ReferenceSettings]) -> list[tuple["torch.Tensor", tuple[int, int]]]:
    """Patch features of one `prepare`d image under several settings, from one backbone pass.

    Why: the deep and the fine bank of a texture read different stages of the same network input; running
    the backbone once for the union of their stages halves its cost per image.

    Args:
        rgb: (h, w, 3) uint8 image at the network size (every settings must share its size and photometric).
        settings: one entry per feature set (stages, pooling, normalisation).
    Returns:
        Per settings: (h'*w', C) float32 features and their grid (h', w').
    """
    import torch  # torch: heavy, loaded only when a model runs

    if len({s.photometric for s in settings}) != 1:
        raise ValueError("embed_scales: every feature set must share its photometric normalisation")
    x = backbone.to_tensor(photometric(rgb, settings[0].photometric))
    union = tuple(sorted({st for s in settings for st in s.stages}))
    by_stage = dict(zip(union, backbone(x, union)))
    with torch.inference_mode():
        return [patch_features([by_stage[st] for st in s.stages], s) for s in settings]


def patch_features(feats: list["torch.Tensor"], settings: ReferenceSettings) -> tuple["torch.Tensor", tuple[int, int]]:
    """Stage maps (1, C_i, h_i, w_i) -> pooled, resized to the first stage's grid, optionally L2-normalised and
    concatenated: (h*w, sum C_i) float32 and the grid (h, w)."""
    import torch  # torch: heavy, loaded only when a model runs
    import torch.nn.functional as F  # torch: heavy, loaded only when a model runs

    grid = feats[0].shape[-2:]
    out = []
    for f in feats:
        if settings.pool > 1:
            f = F.avg_pool2d(f, settings.pool, stride=1, padding=settings.pool // 2, count_include_pad=False)
        if f.shape[-2:] != grid:
            f = F.interpolate(f, size=grid, mode="bilinear", align_corners=False)
        if settings.normalize == "l2":  # stages weigh alike, whatever their channel count and scale
            f = F.normalize(f, dim=1)
        out.append(f)
    e = torch.cat(out, dim=1)[0]
    c = e.shape[0]
    return e.reshape(c, -1).t().contiguous(), (int(grid[0]), int(grid[1]))


def photometric(rgb: np.ndarray, how: str) -> np.ndarray:
    """Per-image brightness normalisation before the backbone, so a tile lit brighter or darker than the
    normal ones is not a defect: "gain" scales the image to mean grey 128, "standardize" to mean 110 / std 40.

    Args:
        rgb: (H, W, 3) uint8 image.
        how: "none", "gain" or "standardize".

    Returns:
        (H, W, 3) uint8 image.
    """
    if how == "none":
        return rgb
    x = rgb.astype(np.float32)
    mean = float(x.mean())
    if how == "gain":
        x = x * (128.0 / max(mean, 1.0))
    elif how == "standardize":
        x = (x - mean) / max(float(x.std()), 1.0) * 40.0 + 110.0
    else:
        raise ValueError(f"unknown photometric normalisation {how!r}; allowed: {', '.join(PHOTOMETRIC)}")
    return np.clip(x, 0, 255).astype(np.uint8)


def nn_distance(queries: "torch.Tensor", bank: "torch.Tensor", k: int = 1, chunk: int = 4096) -> "torch.Tensor":
    """Mean distance of each query to its k nearest bank rows (exact; chunked to bound memory).

    Args:
        queries: (Q, C) float32 features.
        bank: (N, C) float32 features.
        k: nearest rows averaged.
        chunk: queries per matrix product.
    Returns:
        (Q,) distances.
    """
    import torch  # torch: heavy, loaded only when a model runs


    out = []
    bank_sq = (bank * bank).sum(1)
    with torch.inference_mode():
        for start in range(0, queries.shape[0], chunk):
            q = queries[start : start + chunk]
            # ||q-b||^2 = |q|^2 + |b|^2 - 2 q.b  (one matmul; far faster than cdist on CPU)
            d2 = torch.addmm(bank_sq[None, :], q, bank.t(), alpha=-2.0).add_((q * q).sum(1, keepdim=True))
            if k == 1:
                best = d2.min(dim=1).values[:, None]
            else:
                best = d2.topk(k, dim=1, largest=False).values
            out.append(best.clamp_min_(0).sqrt_().mean(1))
    return torch.cat(out)


def coreset(features: np.ndarray, n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Indices of a greedy k-center coreset (PatchCore): n rows that cover the bank's feature space.

    Distances are computed on a fixed random projection to `dim` dimensions to keep fitting fast.
    Unlike a random subset, rare normal patterns (edges, corners) stay in the bank.

    Args:
        features: (N, C) bank rows.
        n: rows to keep.
        dim: projection size.
        seed: seed of the projection and the first row.
    Returns:
        (n,) int64 row indices, sorted.
    """
    import torch  # torch: heavy, loaded only when a model runs


    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    gen = torch.Generator().manual_seed(seed)
    if x.shape[1] > dim:
        x = x @ (torch.randn(x.shape[1], dim, generator=gen) / dim**0.5)
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = int(torch.randint(x.shape[0], (1,), generator=gen))
    with torch.inference_mode():
        mind = ((x - x[chosen[0]]) ** 2).sum(1)
        for i in range(1, n):
            j = int(torch.argmax(mind))
            chosen[i] = j
            mind = torch.minimum(mind, ((x - x[j]) ** 2).sum(1))
    return np.sort(chosen)


@dataclass
class MemoryBank:
    """Normal patch features, plus which source image each row came from (for leave-one-out)."""

    features: np.ndarray  # (N, C) float32
    source: np.ndarray  # (N,) int32 index of the normal image
    settings: ReferenceSettings = field(default_factory=ReferenceSettings)

    def tensor(self) -> "torch.Tensor":
        """The bank's features as a torch tensor: (N, C) float32, sharing memory with `features`."""
        import torch  # torch: heavy, loaded only when a model runs


        return torch.from_numpy(np.ascontiguousarray(self.features, dtype=np.float32))


def build_bank(
    backbone: "LiteFeatures", normals: list[np.ndarray], settings: ReferenceSettings, source_by_view: bool = False
) -> MemoryBank:
    """Embed every normal image under every augmentation; coreset above max_bank rows.

    With augment ("auto",), flips and a 180 degree rotation are added only while the bank stays under
    max_bank: a small bank (few or small normal images) gains orientations of the texture, a large one
    keeps its exact patches and its kNN cost.

    Args:
        backbone: the feature extractor.
        normals: the normal images, each (H, W, 3) uint8.
        settings: the reference settings.
        source_by_view: label rows by augmentation (view) instead of by image, so one image can be
            scored against its other views only.
    Returns:
        The bank: (N, C) float32 features and the (N,) source of each row.
    """
    feats, srcs = [], []
    prepared = [prepare(rgb, settings) for rgb in normals]
    augs = settings.augment
    if augs == ("auto",):
        grid = sum((p.shape[0] // 8) * (p.shape[1] // 8) for p in prepared)  # stride-8 patch count
        augs = AUTO_AUGMENT if grid * len(AUTO_AUGMENT) <= settings.max_bank else ("none",)
    for i, base in enumerate(prepared):
        for v, aug in enumerate(augs):
            e, _ = embed(backbone, augment(base, aug), settings)
            feats.append(e.numpy())
            srcs.append(np.full(e.shape[0], v if source_by_view else i, dtype=np.int32))
    features = np.concatenate(feats).astype(np.float32)
    source = np.concatenate(srcs)
    n = bank_rows(features.shape[0], settings)
    if n < features.shape[0]:
        keep = coreset(features, n)
        features, source = features[keep], source[keep]
    return MemoryBank(features=features, source=source, settings=settings)


def bank_rows(n: int, settings: ReferenceSettings) -> int:
    """Rows kept of a bank of n patches: the coreset fraction (never below MIN_CORESET_ROWS), at most max_bank.

    Measured on MVTec-AD bottle (docs/offline-tuning.md): a 10% coreset of the 16,000 patches of ten
    320 px images gives the same AP/F1-max as the whole bank (90.02/82.45 vs 89.96/82.41) for a tenth
    of the kNN work, which was two thirds of the per-image time.
    """
    keep = n if settings.coreset >= 1.0 else max(min(n, MIN_CORESET_ROWS), int(np.ceil(settings.coreset * n)))
    return min(keep, settings.max_bank)


def raw_map(
    backbone: "LiteFeatures",
    rgb: np.ndarray,
    bank: MemoryBank,
    exclude_source: int | None = None,
    bank_tensor: "torch.Tensor | None" = None,
) -> np.ndarray:
    """Smoothed kNN-distance map at the image's own size (float32, unbounded, >= 0).

    With `segment_levels` set, the map is averaged inside image segments (stages.segment_pooling),
    for the normal images of calibration exactly as for test images.

    Args:
        backbone: the feature extractor.
        rgb: (H, W, 3) uint8 image.
        bank: the memory bank.
        exclude_source: a source whose rows are left out (scores a normal image honestly), or None.
        bank_tensor: `bank.tensor()` when the caller already holds it.
    Returns:
        (H, W) float32 map.
    """
    return raw_maps(backbone, rgb, [(bank, bank_tensor)], exclude_source)[0]


def raw_maps(backbone: "LiteFeatures", rgb: np.ndarray, banks: list[tuple[MemoryBank, "torch.Tensor | None"]],
             exclude_source: int | None = None) -> list[np.ndarray]:
    """`raw_map` of one image against several banks, from one backbone pass when their settings share the
    network size (stages.multiscale: the deep and the fine bank of a texture).

    Args:
        rgb: (H, W, 3) uint8 image.
        banks: (bank, its tensor or None) pairs.
        exclude_source: a source whose rows every bank leaves out, or None.
    Returns:
        Per bank, the (H, W) float32 map.
    """
    if len({network_size(rgb.shape[1], rgb.shape[0], b.settings) for b, _ in banks}) != 1:
        return [raw_maps(backbone, rgb, [pair], exclude_source)[0] for pair in banks]
    prepared = prepare(rgb, banks[0][0].settings)
    embedded = embed_scales(backbone, prepared, [b.settings for b, _ in banks])
    return [finish_map(global_grid(q, grid, b, exclude_source, t), rgb, b.settings)
            for (q, grid), (b, t) in zip(embedded, banks)]


def global_grid(q: "torch.Tensor", grid: tuple[int, int], bank: MemoryBank, exclude_source: int | None = None,
                bank_tensor: "torch.Tensor | None" = None) -> np.ndarray:
    """kNN distance of patch features q (h*w, C) to the bank, as an (h, w) float32 grid."""
    import torch  # torch: heavy, loaded only when a model runs


    b = bank_tensor if bank_tensor is not None else bank.tensor()
    if exclude_source is not None:
        b = b[torch.from_numpy(bank.source != exclude_source)]
    return nn_distance(q, b, k=bank.settings.k).reshape(*grid).numpy()


def finish_map(grid_distances: np.ndarray, rgb: np.ndarray, settings: ReferenceSettings) -> np.ndarray:
    """A patch-grid distance map (h, w) brought to the image's size (H, W): bilinear, smoothed, refined.

    Args:
        grid_distances: (h, w) float distances on the feature grid.
        rgb: the image (H, W, 3) uint8, for the segment refinement.
        settings: sigma and segment levels.

    Returns:
        (H, W) float32 map, >= 0.
    """
    import torch  # torch: heavy, loaded only when a model runs
    import torch.nn.functional as F  # torch: heavy, loaded only when a model runs

    h, w = rgb.shape[:2]
    d = torch.from_numpy(np.ascontiguousarray(grid_distances, dtype=np.float32))[None, None]
    up = F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
    if settings.sigma > 0:
        up = gaussian_filter(up, sigma=settings.sigma, mode="nearest")
    if settings.segment_levels:
        up = refine_map(up, rgb, settings.segment_levels, settings.segment_size, settings.segment_combine,
                        settings.segment_smooth)
    return up.astype(np.float32)
