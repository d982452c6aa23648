"""Object or texture, decided from the normal images themselves.

Why this statistic: the two presets differ in what a normal patch is compared with. An object photographed
in place (a bottle from above, a circuit board) looks different at each position but alike across images
at the same position; a texture (a tile surface, fabric, a crop of a wall) looks alike everywhere, so the
mean feature at a position over the normal images is no different from the mean over all positions. The
share of feature variance explained by position (the between-position sum of squares over the total, on a
fixed grid, corrected for the share n images explain by chance) is high for objects and near zero for
textures. It needs no test image and one cheap embedding of each normal image.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from iapas.models.backbone import LiteFeatures

KIND_SIZE = 224  # every image is resized to this square: stage-3 features on a 14 x 14 grid
KIND_STAGES = (3,)
OBJECT_SHARE = 0.25  # position explains at least this share of the variance (chance-corrected): an object
MAX_IMAGES = 10
BORDER = 2  # grid cells left out at each edge


@dataclass(frozen=True)
class KindChoice:
    """The chosen kind and the evidence for it."""

    kind: str
    position_share: float
    images: int
    rule: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "position_share": round(self.position_share, 4), "images": self.images,
                "rule": self.rule}

    def sentence(self) -> str:
        return (f"kind: {self.kind} (chosen from {self.images} images: position explains "
                f"{max(0.0, 100 * self.position_share):.0f}% of the feature variance; {self.rule})")


def position_share(features: np.ndarray) -> float:
    """Chance-corrected share of variance explained by grid position.

    Args:
        features: (n, P, C) features of n images at the same P grid positions.

    Returns:
        (R^2 - 1/n) / (1 - 1/n), R^2 = between-position over total sum of squares; about 0 for features that
        do not depend on position, 1 when they depend on position only.
    """
    n = features.shape[0]
    if n < 2:
        raise ValueError("the kind needs at least two images")
    x = features.astype(np.float64)
    grand = x.mean(axis=(0, 1), keepdims=True)
    total = float(((x - grand) ** 2).sum())
    if total <= 0:
        return 0.0
    between = float(n * ((x.mean(axis=0, keepdims=True) - grand) ** 2).sum())
    r2 = between / total
    return float((r2 - 1.0 / n) / (1.0 - 1.0 / n))


def choose_kind(rgbs: Sequence[np.ndarray], backbone: "LiteFeatures") -> KindChoice:
    """Object or texture from (normal) images.

    Args:
        rgbs: (H, W, 3) uint8 images of one product; the first MAX_IMAGES are used.
        backbone: the packaged feature extractor.

    Returns:
        The choice with its evidence; with fewer than two images, "object" (the previous default).
    """
    import torch  # torch: heavy, loaded only when a model runs


    used = list(rgbs)[:MAX_IMAGES]
    rule = f"object when the share is at least {OBJECT_SHARE:g}"
    if len(used) < 2:
        return KindChoice("object", float("nan"), len(used), "one image: no evidence, object preset")
    feats = []
    with torch.inference_mode():
        for rgb in used:
            small = np.asarray(Image.fromarray(rgb).convert("RGB").resize((KIND_SIZE, KIND_SIZE), Image.Resampling.BILINEAR))
            f = backbone(backbone.to_tensor(small), KIND_STAGES)[0][0]  # (C, h, w)
            f = f[:, BORDER:-BORDER, BORDER:-BORDER]  # zero padding makes the border ring alike in any image
            feats.append(f.reshape(f.shape[0], -1).t().numpy())
    share = position_share(np.stack(feats))
    return KindChoice("object" if share >= OBJECT_SHARE else "texture", share, len(used), rule)
