"""Which normal-image shapes are worth a warning: tiles of a texture vary in shape, another product's do not."""
from __future__ import annotations

import numpy as np

from iapas.stages.calibration import normal_set_warnings, shape_outliers

# (width, height) of MTD-like defect-free tiles: portrait and landscape strips, 0.36 to 2.6 wide per high
MTD_LIKE = [(116, 290), (121, 283), (196, 550), (241, 92), (300, 115), (356, 400), (210, 240), (180, 205),
            (150, 421), (402, 354), (224, 256), (133, 373)]


def test_varying_tile_sizes_of_a_texture_give_no_warning() -> None:
    assert shape_outliers(MTD_LIKE) == []
    rgbs = [np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8) for i, (w, h) in enumerate(MTD_LIKE)]
    warnings = normal_set_warnings([f"t{i}.png" for i in range(len(MTD_LIKE))], rgbs, [1.0] * len(MTD_LIKE))
    assert not any("unlike the other" in w for w in warnings), warnings


def test_a_shape_no_view_of_the_product_has_is_named() -> None:
    sizes = [(200, 200)] * 8 + [(1500, 40)]  # a long strip among square crops: aspect 37x off
    assert shape_outliers(sizes) == [8]
    sizes = [(200, 200)] * 8 + [(900, 880)]  # a 4.5x larger image: another camera or product
    assert shape_outliers(sizes) == [8]
