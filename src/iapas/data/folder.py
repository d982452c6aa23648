"""`folder`: a user's own data, for evaluating on a production line's images.

    ROOT/normal/   (or good/ or train/)   normal images; the pool Stage 1 samples from
    ROOT/test/                              test images, any depth (subfolder = defect type)
    ROOT/masks/    (or mask/, ground_truth/, gt/)   masks matched to test images by name:
                   same relative path or same stem, optionally with _mask (any image extension)

A test image is anomalous when its mask has a defect pixel; without a mask it is normal. The
category is ROOT's folder name. Normal and test images live in different folders, so the pool never
overlaps the test set.
"""
from __future__ import annotations

from pathlib import Path

from iapas.data.base import DatasetReader, DatasetSplit, Sample, images_in, mask_has_defect, register
from iapas.errors import DatasetError, InputError

NORMAL_DIRS = ("normal", "good", "train")
MASK_DIRS = ("masks", "mask", "ground_truth", "gt")


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _mask_index(mask_dir: Path | None) -> dict[str, Path]:
    """Lookup keys (relative stem path and bare stem, each with and without _mask) -> mask file."""
    index: dict[str, Path] = {}
    if mask_dir is None:
        return index
    for m in images_in(mask_dir, recursive=True):
        rel = m.relative_to(mask_dir).with_suffix("").as_posix().lower()
        stem = m.stem.lower()
        for key in (rel, stem):
            index.setdefault(key, m)
            if key.endswith("_mask"):
                index.setdefault(key[: -len("_mask")], m)
    return index


@register("folder")
class Folder(DatasetReader):
    layout = "normal/ (or good/, train/) normal images, test/ test images, optional masks/ (or mask/, ground_truth/, gt/)"
    def categories(self, root: Path) -> list[str]:
        root = self.check_root(root)
        return [root.resolve().name or "folder"]

    def load(self, root: Path, category: str) -> DatasetSplit:
        root = self.check_root(root)
        normal_dir = _first_dir(root, NORMAL_DIRS)
        if normal_dir is None:
            raise DatasetError(f"folder: {root} needs a normal image folder: one of {', '.join(NORMAL_DIRS)}")
        if not (root / "test").is_dir():
            raise DatasetError(f"folder: {root / 'test'} is missing (the test images)")
        index = _mask_index(_first_dir(root, MASK_DIRS))
        test: list[Sample] = []
        notes: list[str] = []
        for img in images_in(root / "test", recursive=True):
            rel = img.relative_to(root / "test")
            mask = index.get(rel.with_suffix("").as_posix().lower()) or index.get(img.stem.lower())
            try:
                anomalous = mask_has_defect(mask)
            except InputError as exc:
                notes.append(str(exc))
                anomalous = True
            defect = rel.parts[0] if len(rel.parts) > 1 else ("defect" if anomalous else "good")
            test.append(Sample(img, mask, int(anomalous), category, defect))
        pool = images_in(normal_dir, recursive=True)
        if not test:
            raise DatasetError(f"folder: no images in {root / 'test'}")
        return DatasetSplit("folder", category, test, pool, f"{normal_dir.name}/ images", notes=notes)
