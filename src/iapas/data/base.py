"""What every dataset reader yields, the registry of readers, and the shared mask/listing helpers.

A reader turns a dataset root, in the layout its publisher distributes, into per-category splits:
the test samples (image, mask or none, label, category, defect type) and the pool of normal images
Stage 1 may sample from. Where a dataset has no normal training split, the pool is drawn from the
normal test images and the sampled ones are removed from the test set per seed
(`DatasetSplit.test_for`), so Stage 1 never sees an image it is then scored on.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from iapas.errors import DatasetError, SettingsError
from iapas.io.images import is_image_file, load_mask
from iapas.io.listing import location


@dataclass(frozen=True)
class Sample:
    """One test image and its ground truth."""

    image_path: Path
    mask_path: Path | None  # None: no defect pixels (normal image without a mask file)
    label: int  # 1 anomalous, 0 normal
    category: str
    defect_type: str  # publisher's defect folder/name; "good" for normal images


@dataclass
class DatasetSplit:
    """Test samples and normal pool of one category."""

    dataset: str
    category: str
    test: list[Sample]
    normal_pool: list[Path]
    pool_rule: str  # how the normal pool was chosen, reported in metrics.json
    pool_overlaps_test: bool = False  # True: sampled normal images are removed from the test set
    kind: str = "object"  # "object" or "texture": the paper's threshold preset for this category
    notes: list[str] = field(default_factory=list)
    # what the official IAP-AS evaluation loop scores (`--protocol paper`); None = official_keep(test)
    paper_test: list[Sample] | None = None
    paper_rule: str = "test images with a mask file, except folders literally named `good`"
    # the official loop also scores the normal images Stage 1 sampled (MTD: its 10 MT_Free tiles)
    paper_keeps_sampled: bool = False

    def excluding(self, folder: Path) -> DatasetSplit:
        """This split without any image or mask under `folder` (the evaluation's own output folder,
        which may sit inside the dataset): a rerun must never score its own report images."""
        top = Path(os.path.realpath(folder))

        def inside(p: Path | None) -> bool:
            return p is not None and location(Path(p)).is_relative_to(top)

        def keep(samples: list[Sample]) -> list[Sample]:
            return [s for s in samples if not (inside(s.image_path) or inside(s.mask_path))]

        test = keep(self.test)
        pool = [p for p in self.normal_pool if not inside(p)]
        dropped = len(self.test) - len(test) + len(self.normal_pool) - len(pool)
        if not dropped:
            return self
        note = f"left out {dropped} image(s) under the output folder {folder} (never evaluated on its own outputs)"
        paper = keep(self.paper_test) if self.paper_test is not None else None
        return replace(self, test=test, normal_pool=pool, paper_test=paper, notes=[*self.notes, note])

    def test_for(self, sampled_normals: list[Path], protocol: str = "standard") -> list[Sample]:
        """Test samples of one seed under a protocol: never an image that Stage 1 sampled, except under the
        paper protocol where the official loop scores them too (`paper_keeps_sampled`).

        Args:
            sampled_normals: the r normal images Stage 1 used for this seed.
            protocol: "standard" (every test image) or "paper" (the official code's selection).
        """
        samples = self.test if protocol != "paper" else (
            self.paper_test if self.paper_test is not None else [s for s in self.test if official_keep(s)]
        )
        if not self.pool_overlaps_test or (protocol == "paper" and self.paper_keeps_sampled):
            return list(samples)
        taken = {str(Path(p)) for p in sampled_normals}
        return [s for s in samples if str(s.image_path) not in taken]


def official_keep(sample: Sample) -> bool:
    """The official evaluation loop's rule: skip images without a mask file and folders named `good`.

    (test_zsas.py: `if gt_path == None or (sub_name == 'good' and dataset_name != 'mvtec'): continue`;
    readers whose official loop keeps normal images without a mask file set `paper_test` themselves.)
    """
    return sample.mask_path is not None and sample.image_path.parent.name != "good"


class DatasetReader:
    """Base class: `categories(root)` and `load(root, category)`."""

    name: str = ""
    textures: frozenset[str] = frozenset()  # categories the paper treats as textures
    layout: str = ""  # the publisher's folder layout, quoted when a root does not match it

    def categories(self, root: Path) -> list[str]:
        raise NotImplementedError

    def find_categories(self, root: Path) -> list[str]:
        """`categories(root)`, refusing a root that holds none with the layout this reader expects
        (a wrong --dataset or --root must not evaluate 0 images and exit 0)."""
        found = self.categories(root)
        if not found:
            raise DatasetError(f"{self.name}: no category found under {root}; expected the {self.name} layout: "
                               f"{self.layout}")
        return found

    def load(self, root: Path, category: str) -> DatasetSplit:
        raise NotImplementedError

    def kind_of(self, category: str) -> str:
        return "texture" if category in self.textures else "object"

    def check_root(self, root: Path) -> Path:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{self.name} root {root} does not exist or is not a folder")
        return root

    def check_category(self, root: Path, category: str) -> None:
        known = self.categories(root)
        if category not in known:
            raise DatasetError(
                f"{self.name}: category {category!r} not found under {root}; found: {', '.join(known) or 'none'}"
            )


_REGISTRY: dict[str, Callable[[], DatasetReader]] = {}


def register(name: str) -> Callable[[type[DatasetReader]], type[DatasetReader]]:
    """Class decorator adding a reader under its dataset NAME."""

    def deco(cls: type[DatasetReader]) -> type[DatasetReader]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def registered_names() -> list[str]:
    """The dataset names registered so far (`iapas.data.dataset_names` after importing every reader)."""
    return sorted(_REGISTRY)


def reader_for(name: str) -> DatasetReader:
    """A new reader of a registered NAME; unknown names list the registered ones."""
    if name not in _REGISTRY:
        raise SettingsError(f"unknown dataset {name!r}; allowed: {', '.join(registered_names())}")
    return _REGISTRY[name]()


# ---------------------------------------------------------------- helpers shared by readers


def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    """Image-named entries of a folder, sorted; hidden files are skipped.

    Entries that are not regular files (FIFOs, symlink loops, broken links) are kept: they then fail
    per image with their own reason instead of vanishing from the evaluation without a note.
    """
    if not folder.is_dir():
        return []
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if not p.is_dir() and is_image_file(p) and not p.name.startswith("."))


def find_mask(folder: Path, stem: str, suffixes: tuple[str, ...] = ("_mask", "")) -> Path | None:
    """The mask file in `folder` named stem+suffix with any image extension (case-insensitive)."""
    if not folder.is_dir():
        return None
    wanted = {(stem + s).lower() for s in suffixes}
    for p in sorted(folder.iterdir()):
        if p.is_file() and is_image_file(p) and p.stem.lower() in wanted:
            return p
    return None


def mask_array(path: str | Path, rule: str = "publisher") -> np.ndarray:
    """A ground-truth mask as bool, read by `iapas.io.images.load_mask` (the one mask reader).

    Args:
        path: the mask file.
        rule: "publisher" (each publisher's own levels) or "official" (grey > 128, the official IAP-AS evaluation's).
    Returns:
        (H, W) bool mask.
    """
    return load_mask(path, rule=rule)


def mask_has_defect(path: Path | None) -> bool:
    return path is not None and bool(mask_array(path).any())


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what}: expected folder {path} is missing")
    return path
