"""MVTec-AD layout, shared by MPDD and DTD-Synthetic (their publishers copied it).

    ROOT/<category>/train/good/*.png                 normal pool (Stage 1 samples here)
    ROOT/<category>/test/good/*.png                  normal test images
    ROOT/<category>/test/<defect>/*.png              anomalous test images
    ROOT/<category>/ground_truth/<defect>/<stem>_mask.png
"""
from __future__ import annotations

from pathlib import Path

from iapas.data.base import DatasetReader, DatasetSplit, Sample, find_mask, images_in, register, require_dir

MVTEC_TEXTURES = frozenset({"carpet", "grid", "leather", "tile", "wood"})
NORMAL_NAMES = ("good",)


class MVTecLike(DatasetReader):
    """Reader of the MVTec-AD folder layout."""
    layout = ("CATEGORY/train/good/*.png (normal images), CATEGORY/test/<good|defect>/*.png, "
              "CATEGORY/ground_truth/<defect>/<name>_mask.png")

    paper_keeps_good = False  # the official loop skips test/good on every dataset but MVTec-AD

    def categories(self, root: Path) -> list[str]:
        root = self.check_root(root)
        return sorted(d.name for d in root.iterdir() if d.is_dir() and (d / "test").is_dir())

    def load(self, root: Path, category: str) -> DatasetSplit:
        root = self.check_root(root)
        self.check_category(root, category)
        base = root / category
        pool = images_in(require_dir(base / "train" / "good", f"{self.name} {category} normal training images"))
        test: list[Sample] = []
        for d in sorted(p for p in require_dir(base / "test", f"{self.name} {category} test set").iterdir() if p.is_dir()):
            normal = d.name in NORMAL_NAMES
            for img in images_in(d):
                mask = None
                if not normal:
                    gt_dir = base / "ground_truth" / d.name
                    # a missing mask is reported per image (InputError) with the path it expected
                    mask = find_mask(gt_dir, img.stem) or gt_dir / f"{img.stem}_mask.png"
                test.append(Sample(img, mask, 0 if normal else 1, category, "good" if normal else d.name))
        split = DatasetSplit(self.name, category, test, pool, "train/good", kind=self.kind_of(category))
        if self.paper_keeps_good:
            split.paper_test = list(test)
            split.paper_rule = "every test image, test/good included (official: good maps scored against an empty mask)"
        else:
            split.paper_rule = "test/good skipped (the official loop skips folders literally named `good`)"
        return split


@register("mvtec")
class MVTec(MVTecLike):
    textures = MVTEC_TEXTURES
    paper_keeps_good = True


@register("mpdd")
class MPDD(MVTecLike):
    pass


@register("dtd-synthetic")
class DTDSynthetic(MVTecLike):
    """DTD-Synthetic: every category is a texture (Woven_001, Blotchy_099, ...)."""

    def kind_of(self, category: str) -> str:
        return "texture"
