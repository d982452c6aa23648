"""DAGM 2007, original layout; one category per class.

    ROOT/Class<N>/Train/*.PNG, ROOT/Class<N>/Test/*.PNG
    ROOT/Class<N>/<Train|Test>/Label/Labels.txt and <id>_label.PNG for defective images

Labels.txt: a header line, then one line per image: index, 0/1 (defective), image file, 0, label file.
Without Labels.txt an image is defective when its <id>_label file exists. Rule: the normal pool is
the defect-free Train images; the test set is Test/.
"""
from __future__ import annotations

import re
from pathlib import Path

from iapas.data.base import DatasetReader, DatasetSplit, Sample, find_mask, images_in, register, require_dir
from iapas.errors import DatasetError

_CLASS = re.compile(r"^Class(\d+)$")


def read_labels_txt(label_dir: Path) -> dict[str, bool] | None:
    """image file name (lower case) -> defective, from Labels.txt; None when the file is absent."""
    txt = next((p for p in label_dir.glob("*") if p.name.lower() == "labels.txt"), None) if label_dir.is_dir() else None
    if txt is None:
        return None
    out: dict[str, bool] = {}
    for i, line in enumerate(txt.read_text(encoding="utf-8", errors="replace").splitlines()):
        parts = line.split()
        if i == 0 and len(parts) <= 1:
            continue  # header
        if len(parts) < 3:
            continue
        if parts[1] not in ("0", "1"):
            raise DatasetError(f"dagm2007: {txt} line {i + 1} is malformed: {line!r}")
        out[parts[2].lower()] = parts[1] == "1"
    return out


@register("dagm2007")
class DAGM2007(DatasetReader):
    layout = "Class<N>/Train/*.PNG and Class<N>/Test/*.PNG, with <Train|Test>/Label/Labels.txt and <id>_label.PNG"
    def categories(self, root: Path) -> list[str]:
        root = self.check_root(root)
        cats = [d.name for d in root.iterdir() if d.is_dir() and _CLASS.match(d.name)]
        return sorted(cats, key=lambda c: int(_CLASS.match(c).group(1)))  # type: ignore[union-attr]

    def kind_of(self, category: str) -> str:
        return "texture"

    def _split(self, folder: Path, category: str) -> list[Sample]:
        label_dir = folder / "Label"
        flags = read_labels_txt(label_dir)
        samples = []
        for img in images_in(folder):
            mask = find_mask(label_dir, img.stem, ("_label",))
            defective = flags.get(img.name.lower(), mask is not None) if flags is not None else mask is not None
            if defective and mask is None:
                mask = label_dir / f"{img.stem}_label.PNG"  # reported per image as missing
            samples.append(Sample(img, mask if defective else None, int(defective), category, "defect" if defective else "good"))
        return samples

    def load(self, root: Path, category: str) -> DatasetSplit:
        self.check_category(root, category)
        base = Path(root) / category
        train = self._split(require_dir(base / "Train", f"dagm2007 {category}"), category)
        test = self._split(require_dir(base / "Test", f"dagm2007 {category}"), category)
        pool = [s.image_path for s in train if s.label == 0]
        return DatasetSplit(
            "dagm2007", category, test, pool, "defect-free Train images", kind="texture",
            paper_test=[s for s in test + train if s.label == 1],
            paper_rule=("images with a Label/ mask file from Test and Train (the official loop lists both folders "
                        "and skips images without a label); normal pool: defect-free Train images, not the "
                        "official Label/ draw, which samples defective images as normal ones"),
        )
