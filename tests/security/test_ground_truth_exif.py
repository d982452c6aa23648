"""An image and its mask that both carry an EXIF orientation are turned upright the same way: the defect and
its mask still overlap (tested on a non-square pair, where a missed rotation cannot go unnoticed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iapas.io.images import load_image, load_mask


def exif(orientation: int) -> Image.Exif:
    e = Image.Exif()
    e[0x0112] = orientation
    return e


def pair(folder: Path, orientation: int, mode: str = "L") -> tuple[Path, Path]:
    """A 90x60 stored photo with a white defect block, and its mask marking that block, both with `orientation`."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = np.full((60, 90, 3), 40, np.uint8)
    photo[5:20, 60:85] = 255
    mask = np.zeros((60, 90), np.uint8)
    mask[5:20, 60:85] = 255
    img_path, mask_path = folder / "part.png", folder / "part_mask.png"
    Image.fromarray(photo).save(img_path, exif=exif(orientation))
    m = Image.fromarray(mask)
    m = m.convert("1") if mode == "1" else m.convert("P") if mode == "P" else m
    m.save(mask_path, exif=exif(orientation))
    return img_path, mask_path


@pytest.mark.parametrize("orientation", [6, 8, 3, 5, 2])
def test_mask_and_image_rotated_alike(tmp_path: Path, orientation: int) -> None:
    img_path, mask_path = pair(tmp_path, orientation)
    loaded = load_image(img_path)
    mask = load_mask(mask_path, size=loaded.original_size)
    assert mask.shape == loaded.rgb.shape[:2]
    defect = loaded.rgb.mean(axis=2) > 200
    overlap = (defect & mask).sum() / max((defect | mask).sum(), 1)
    assert overlap == 1.0


@pytest.mark.parametrize("mode", ["1", "P"])
def test_palette_and_bilevel_masks_rotate_too(tmp_path: Path, mode: str) -> None:
    img_path, mask_path = pair(tmp_path, 6, mode)
    loaded = load_image(img_path)
    mask = load_mask(mask_path, size=loaded.original_size)
    assert loaded.rgb.shape[:2] == (90, 60) and mask.shape == (90, 60)
    assert np.array_equal(mask, loaded.rgb.mean(axis=2) > 200)


def test_mask_without_exif_beside_a_rotated_photo_is_refused_by_size(tmp_path: Path) -> None:
    img_path, _ = pair(tmp_path, 6)
    plain = tmp_path / "plain_mask.png"
    Image.fromarray(np.zeros((60, 90), np.uint8)).save(plain)  # stored orientation, no EXIF: 90x60 vs 60x90
    from iapas.errors import InputError

    with pytest.raises(InputError, match="differs from its image size"):
        load_mask(plain, size=load_image(img_path).original_size)
