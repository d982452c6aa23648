"""Magnetic Tile Defect dataset (Huang et al.), original layout; reported as one category "mtd".

    ROOT/MT_<type>/Imgs/<name>.jpg   with the mask <name>.png beside it
    MT_Free holds the normal images; MT_Blowhole, MT_Break, MT_Crack, MT_Fray, MT_Uneven the defects.

There is no training split. Rule: the normal pool is MT_Free; Stage 1 samples r of them with the
seed and the test set is every defect image plus every MT_Free image that was not sampled
(r = 10 -> 942 normal test images). Under `--protocol paper` the sampled tiles are scored too (952), as
in the official evaluation. defect_type is the MT_ folder name.
"""
from __future__ import annotations

from pathlib import Path

from iapas.data.base import DatasetReader, DatasetSplit, Sample, register, require_dir
from iapas.errors import DatasetError

CATEGORY = "mtd"
NORMAL = "MT_Free"


@register("mtd")
class MTD(DatasetReader):
    layout = "MT_<type>/Imgs/<name>.jpg with the mask <name>.png beside it; MT_Free/Imgs holds the normal images"
    textures = frozenset({CATEGORY})

    def categories(self, root: Path) -> list[str]:
        root = self.check_root(root)
        if not (root / NORMAL / "Imgs").is_dir():
            raise DatasetError(f"mtd: {root / NORMAL / 'Imgs'} is missing (expected MT_<type>/Imgs/*.jpg)")
        return [CATEGORY]

    def load(self, root: Path, category: str) -> DatasetSplit:
        self.check_category(root, category)
        root = Path(root)
        pool: list[Path] = []
        test: list[Sample] = []
        type_dirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name.startswith("MT_"))
        for d in type_dirs:
            imgs = sorted(require_dir(d / "Imgs", f"mtd {d.name}").glob("*.jpg"))
            normal = d.name == NORMAL
            for img in imgs:
                mask = img.with_suffix(".png")
                test.append(Sample(img, mask if (mask.is_file() or not normal) else None, 0 if normal else 1, CATEGORY, d.name))
                if normal:
                    pool.append(img)
        if not pool:
            raise DatasetError(f"mtd: no normal images (*.jpg) in {root / NORMAL / 'Imgs'}")
        if len(type_dirs) < 2:
            raise DatasetError(f"mtd: no defect folders MT_<type>/Imgs next to {NORMAL} under {root}")
        return DatasetSplit(
            "mtd", CATEGORY, test, pool,
            "MT_Free images; the r sampled ones are removed from the test set", pool_overlaps_test=True,
            kind="texture",
            paper_rule=("every MT_<type> image with its .png mask, MT_Free included; the r MT_Free tiles Stage 1 "
                        "sampled are scored too (they are also the normal images), as the official evaluation does"),
            paper_keeps_sampled=True,
        )
