"""KolektorSDD (KSDD1), original layout; reported as one category "ksdd1".

    ROOT/kos01 .. kos50/PartK.jpg  with  PartK_label.bmp  (all zero for defect-free parts)

There is no training split. Rule: a part is anomalous when its label has any defect pixel; the
normal pool is the defect-free parts, Stage 1 samples r of them with the seed and the test set is
every other image (all defective parts plus the defect-free parts not sampled).
"""
from __future__ import annotations

import re
from pathlib import Path

from iapas.data.base import DatasetReader, DatasetSplit, Sample, images_in, mask_has_defect, register
from iapas.errors import DatasetError, InputError

CATEGORY = "ksdd1"
_PART = re.compile(r"^Part\d+$", re.IGNORECASE)


@register("ksdd1")
class KSDD1(DatasetReader):
    layout = "kosNN/PartK.jpg with PartK_label.bmp beside it"
    textures = frozenset({CATEGORY})

    def _folders(self, root: Path) -> list[Path]:
        root = self.check_root(root)
        folders = sorted(d for d in root.iterdir() if d.is_dir() and d.name.lower().startswith("kos"))
        if not folders:
            raise DatasetError(f"ksdd1: no kosNN folders under {root} (expected kosNN/PartK.jpg + PartK_label.bmp)")
        return folders

    def categories(self, root: Path) -> list[str]:
        self._folders(root)
        return [CATEGORY]

    def load(self, root: Path, category: str) -> DatasetSplit:
        self.check_category(root, category)
        test: list[Sample] = []
        pool: list[Path] = []
        notes: list[str] = []
        for d in self._folders(root):
            for img in images_in(d):
                if not _PART.match(img.stem):
                    continue
                label = next((p for p in d.iterdir() if p.stem.lower() == f"{img.stem.lower()}_label"), None)
                if label is None:
                    notes.append(f"{img}: no {img.stem}_label.bmp, counted as anomalous with a missing mask")
                    test.append(Sample(img, d / f"{img.stem}_label.bmp", 1, CATEGORY, "defect"))
                    continue
                try:
                    defect = mask_has_defect(label)
                except InputError as exc:
                    notes.append(str(exc))
                    defect = True  # unreadable label: keep as anomalous so the failure is reported per image
                test.append(Sample(img, label, int(defect), CATEGORY, "defect" if defect else "good"))
                if not defect:
                    pool.append(img)
        if not test:
            raise DatasetError(f"ksdd1: no PartK images found under {root}")
        return DatasetSplit(
            "ksdd1", CATEGORY, test, pool,
            "defect-free parts (empty label); the r sampled ones are removed from the test set",
            pool_overlaps_test=True, kind="texture", notes=notes,
            paper_rule=("every part of every kosNN folder, defect-free parts included, pooled into one category "
                        "(the official code makes each kosNN a category, most with no defect pixel)"),
        )
