"""KolektorSDD2 (KSDD2), original layout; reported as one category "ksdd2".

    ROOT/train/<id>.png with <id>_GT.png      ROOT/test/<id>.png with <id>_GT.png

Rule: the normal pool is the training images whose GT is empty (the test set is never touched);
the test set is every image of test/, anomalous when its GT has any defect pixel.
"""
from __future__ import annotations

from pathlib import Path

from iapas.data.base import DatasetReader, DatasetSplit, Sample, images_in, mask_has_defect, register, require_dir
from iapas.errors import DatasetError, InputError

CATEGORY = "ksdd2"


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    files = images_in(folder)
    by_stem = {p.stem.lower(): p for p in files}
    out = []
    for p in files:
        if p.stem.lower().endswith("_gt"):
            continue
        gt = by_stem.get(p.stem.lower() + "_gt")
        out.append((p, gt if gt is not None else folder / f"{p.stem}_GT.png"))
    return out


@register("ksdd2")
class KSDD2(DatasetReader):
    layout = "train/<id>.png with <id>_GT.png, test/<id>.png with <id>_GT.png"
    textures = frozenset({CATEGORY})

    def categories(self, root: Path) -> list[str]:
        root = self.check_root(root)
        for sub in ("train", "test"):
            require_dir(root / sub, "ksdd2 (expected train/ and test/ with <id>.png and <id>_GT.png)")
        return [CATEGORY]

    def load(self, root: Path, category: str) -> DatasetSplit:
        self.check_category(root, category)
        root = Path(root)
        notes: list[str] = []
        pool = []
        for img, gt in _pairs(root / "train"):
            try:
                if gt.is_file() and not mask_has_defect(gt):
                    pool.append(img)
            except InputError as exc:
                notes.append(str(exc))
        test = []
        for img, gt in _pairs(root / "test"):
            try:
                defect = mask_has_defect(gt) if gt.is_file() else True
            except InputError as exc:
                notes.append(str(exc))
                defect = True
            test.append(Sample(img, gt, int(defect), CATEGORY, "defect" if defect else "good"))
        if not test:
            raise DatasetError(f"ksdd2: no test images in {root / 'test'}")
        return DatasetSplit("ksdd2", CATEGORY, test, pool, "train images with an empty GT", kind="texture", notes=notes,
                            paper_rule="every test image with its _GT mask, defect-free ones included")
