"""`folder`: a user's own data, for evaluating on a production line's images.

    ROOT/normal/   (or good/ or train/)   normal images; the pool Stage 1 samples from
    ROOT/test/                              test images, any depth (subfolder = defect type)
    ROOT/masks/    (or mask/, ground_truth/, gt/)   masks matched to test images by name:
                   same relative path, optionally with _mask (any image extension); failing that, the
                   same bare stem, but only when that is unambiguous: one mask has the stem, no other
                   test image claims it, and it does not sit in another sub-folder (defect type) than
                   the image (`test/good/000.png` never takes `ground_truth/crack/000_mask.png`: that
                   is an error naming both files)

A test image is anomalous when its mask has a defect pixel; without a mask it is normal. The
category is ROOT's folder name. Normal and test images live in different folders, so the pool never
overlaps the test set. Without a normal folder the pool is empty: only zero-shot evaluation
(`iapas evaluate --zero-shot`) accepts such a root; the normal modes stop with a message that says so.
"""
from __future__ import annotations

from pathlib import Path

from iapas.data.base import DatasetReader, DatasetSplit, Sample, images_in, mask_has_defect, register
from iapas.errors import DatasetError, InputError

NORMAL_DIRS = ("normal", "good", "train")
MASK_DIRS = ("masks", "mask", "ground_truth", "gt")


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _key(rel: Path) -> str:
    return rel.with_suffix("").as_posix().lower()


def _unmasked(key: str) -> str:
    return key[: -len("_mask")] if key.endswith("_mask") else key


class MaskIndex:
    """The masks of a folder dataset, found by relative path (exact) or, when unambiguous, by bare stem."""

    def __init__(self, mask_dir: Path | None) -> None:
        self.mask_dir = mask_dir
        self.by_path: dict[str, Path] = {}
        self.by_stem: dict[str, list[Path]] = {}
        if mask_dir is None:
            return
        for m in images_in(mask_dir, recursive=True):
            rel = _key(m.relative_to(mask_dir))
            for key in dict.fromkeys((rel, _unmasked(rel))):
                self.by_path.setdefault(key, m)
            for stem in dict.fromkeys((m.stem.lower(), _unmasked(m.stem.lower()))):
                self.by_stem.setdefault(stem, []).append(m)

    def exact(self, rel: Path) -> Path | None:
        """The mask at the image's own relative path (with or without _mask)."""
        return self.by_path.get(_key(rel))

    def by_bare_stem(self, rel: Path) -> tuple[Path | None, str | None]:
        """(mask, problem): the single mask sharing the image's bare stem, or why none may be used."""
        candidates = self.by_stem.get(rel.stem.lower(), [])
        if not candidates or self.mask_dir is None:
            return None, None
        if len(candidates) > 1:
            names = ", ".join(str(c) for c in candidates[:4])
            return None, f"several masks share its name ({names}); put each mask at the image's relative path"
        mask = candidates[0]
        mask_folder = mask.relative_to(self.mask_dir).parent
        if rel.parent != Path(".") and mask_folder != Path(".") and mask_folder.as_posix().lower() != rel.parent.as_posix().lower():
            return None, f"its only candidate mask {mask} lies in another defect folder ({mask_folder.as_posix()}/, the image is in {rel.parent.as_posix()}/)"
        return mask, None


@register("folder")
class Folder(DatasetReader):
    layout = "normal/ (or good/, train/) normal images, test/ test images, optional masks/ (or mask/, ground_truth/, gt/)"
    def categories(self, root: Path) -> list[str]:
        root = self.check_root(root)
        return [root.resolve().name or "folder"]

    def load(self, root: Path, category: str) -> DatasetSplit:
        root = self.check_root(root)
        normal_dir = _first_dir(root, NORMAL_DIRS)
        if not (root / "test").is_dir():
            raise DatasetError(f"folder: {root / 'test'} is missing (the test images)")
        index = MaskIndex(_first_dir(root, MASK_DIRS))
        test: list[Sample] = []
        notes: list[str] = []
        pairing: list[tuple[Path, Path | None]] = []
        problems: list[str] = []
        claimed: dict[Path, list[Path]] = {}  # masks found by bare stem -> the test images taking them
        for img in images_in(root / "test", recursive=True):
            rel = img.relative_to(root / "test")
            mask = index.exact(rel)
            if mask is None:
                mask, problem = index.by_bare_stem(rel)
                if problem:
                    problems.append(f"{img}: {problem}")
                if mask is not None:
                    claimed.setdefault(mask, []).append(img)
            pairing.append((img, mask))
        problems += [f"mask {m} would pair with {len(imgs)} test images ({', '.join(str(i) for i in imgs[:3])}); "
                     "put each mask at its image's relative path" for m, imgs in claimed.items() if len(imgs) > 1]
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise DatasetError("folder: test images and masks cannot be paired safely:\n  " + "\n  ".join(problems[:5]) + more)
        for img, mask in pairing:
            rel = img.relative_to(root / "test")
            try:
                anomalous = mask_has_defect(mask)
            except InputError as exc:
                notes.append(str(exc))
                anomalous = True
            defect = rel.parts[0] if len(rel.parts) > 1 else ("defect" if anomalous else "good")
            test.append(Sample(img, mask, int(anomalous), category, defect))
        if not test:
            raise DatasetError(f"folder: no images in {root / 'test'}")
        if normal_dir is None:
            rule = f"none: {root} has no normal image folder ({', '.join(NORMAL_DIRS)}); use --zero-shot"
            return DatasetSplit("folder", category, test, [], rule, notes=notes)
        pool = images_in(normal_dir, recursive=True)
        return DatasetSplit("folder", category, test, pool, f"{normal_dir.name}/ images", notes=notes)
