"""BTAD (BeanTech) layout; the archive may add a BTech_Dataset_transformed/ level, which is accepted.

    ROOT/<01|02|03>/train/ok/*          normal pool
    ROOT/<cat>/test/ok/*                normal test images
    ROOT/<cat>/test/ko/*                anomalous test images
    ROOT/<cat>/ground_truth/ko/<stem>.png|.bmp   (mask with the image's stem)
"""
from __future__ import annotations

from pathlib import Path

from iapas.data.base import DatasetReader, DatasetSplit, Sample, find_mask, images_in, register, require_dir


@register("btad")
class BTAD(DatasetReader):
    layout = ("CATEGORY/train/ok/*, CATEGORY/test/ok/* and test/ko/*, CATEGORY/ground_truth/ko/<name>.png|.bmp "
              "(optionally under BTech_Dataset_transformed/)")
    def _base(self, root: Path) -> Path:
        root = self.check_root(root)
        inner = root / "BTech_Dataset_transformed"
        return inner if inner.is_dir() else root

    def categories(self, root: Path) -> list[str]:
        base = self._base(root)
        return sorted(d.name for d in base.iterdir() if d.is_dir() and (d / "test").is_dir())

    def load(self, root: Path, category: str) -> DatasetSplit:
        self.check_category(root, category)
        base = self._base(root) / category
        pool = images_in(require_dir(base / "train" / "ok", f"btad {category} normal training images"))
        test: list[Sample] = []
        for img in images_in(require_dir(base / "test" / "ok", f"btad {category} normal test images")):
            test.append(Sample(img, None, 0, category, "good"))
        gt = base / "ground_truth" / "ko"
        for img in images_in(require_dir(base / "test" / "ko", f"btad {category} anomalous test images")):
            mask = find_mask(gt, img.stem, ("", "_mask")) or gt / f"{img.stem}.png"
            test.append(Sample(img, mask, 1, category, "ko"))
        return DatasetSplit("btad", category, test, pool, "train/ok",
                            paper_rule="test/ko only (the official code lists only the ko folder)")
