"""Tiny datasets written in each publisher's layout, for the dataset and harness tests.

Every image is dark noise; anomalous images carry one bright rectangle and their mask marks exactly
that rectangle (in the publisher's mask encoding), so tests can check that masks line up with their
images. Images are deliberately not square (W != H) to catch transposed masks. Each generator
returns what a reader must find: {category: {"test": n, "anomalous": n, "pool": n}}.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 40, 28  # width, height


def _pair(rng: np.random.Generator, anomalous: bool, rgb: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Image (uint8, dark noise plus a bright box when anomalous) and its bool mask."""
    img = rng.integers(0, 60, size=(H, W), dtype=np.uint8)
    mask = np.zeros((H, W), dtype=bool)
    if anomalous:
        y0, x0 = int(rng.integers(0, H - 8)), int(rng.integers(0, W - 10))
        h, w = int(rng.integers(3, 8)), int(rng.integers(3, 10))
        mask[y0 : y0 + h, x0 : x0 + w] = True
        img[mask] = rng.integers(200, 256, size=int(mask.sum()), dtype=np.uint8)
    if rgb:
        img = np.repeat(img[..., None], 3, axis=2)
    return img, mask


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _save_mask(path: Path, mask: np.ndarray, encoding: str = "255") -> None:
    """encoding: '255' (0/255 L), '01' (0/1 L), 'palette' (P mode, index 1), 'fringe' (0/255 with a faint halo)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if encoding == "palette":
        im = Image.fromarray(mask.astype(np.uint8), mode="L").convert("P")
        im.putpalette([0, 0, 0, 255, 255, 255] + [0, 0, 0] * 254)
        im.save(path)
        return
    if encoding == "01":
        Image.fromarray(mask.astype(np.uint8)).save(path)
        return
    arr = mask.astype(np.uint8) * 255
    if encoding == "fringe":  # like MTD's masks: values 1..100 just outside the defect
        from scipy import ndimage

        halo = ndimage.binary_dilation(mask, iterations=1) & ~mask
        arr[halo] = 40
    Image.fromarray(arr).save(path)


def make_mvtec_like(root: Path, seed: int = 0, ext: str = ".png") -> dict[str, dict[str, int]]:
    """MVTec-AD / MPDD / DTD-Synthetic layout with two categories."""
    rng = np.random.default_rng(seed)
    spec = {"bottle": {"good": 3, "broken": 2, "contamination": 1}, "carpet": {"good": 2, "hole": 3}}
    expected = {}
    for cat, groups in spec.items():
        for i in range(5):
            _save(root / cat / "train" / "good" / f"{i:03d}{ext}", _pair(rng, False, rgb=True)[0])
        for d, n in groups.items():
            for i in range(n):
                img, mask = _pair(rng, d != "good", rgb=True)
                _save(root / cat / "test" / d / f"{i:03d}{ext}", img)
                if d != "good":
                    _save_mask(root / cat / "ground_truth" / d / f"{i:03d}_mask.png", mask)
        n_anom = sum(n for d, n in groups.items() if d != "good")
        expected[cat] = {"test": sum(groups.values()), "anomalous": n_anom, "pool": 5}
    (root / "license.txt").write_text("not a category\n")
    return expected


def make_btad(root: Path, seed: int = 1) -> dict[str, dict[str, int]]:
    """BTAD with its BTech_Dataset_transformed/ level; category 03 uses .bmp images and masks."""
    rng = np.random.default_rng(seed)
    base = root / "BTech_Dataset_transformed"
    expected = {}
    for cat, ext in (("01", ".bmp"), ("03", ".bmp"), ("02", ".png")):
        for i in range(4):
            _save(base / cat / "train" / "ok" / f"{i:04d}{ext}", _pair(rng, False, rgb=True)[0])
        for i in range(2):
            _save(base / cat / "test" / "ok" / f"{i:04d}{ext}", _pair(rng, False, rgb=True)[0])
        for i in range(3):
            img, mask = _pair(rng, True, rgb=True)
            _save(base / cat / "test" / "ko" / f"{i:04d}{ext}", img)
            _save_mask(base / cat / "ground_truth" / "ko" / f"{i:04d}{'.bmp' if cat == '03' else '.png'}", mask)
        expected[cat] = {"test": 5, "anomalous": 3, "pool": 4}
    return expected


def make_ksdd1(root: Path, seed: int = 2) -> dict[str, dict[str, int]]:
    """KolektorSDD: kosNN/PartK.jpg + PartK_label.bmp; 3 folders x 4 parts, 3 defective parts."""
    rng = np.random.default_rng(seed)
    defective = {("kos01", 2), ("kos02", 0), ("kos03", 3)}
    for k in ("kos01", "kos02", "kos03"):
        for p in range(4):
            img, mask = _pair(rng, (k, p) in defective)
            _save(root / k / f"Part{p}.jpg", img)
            _save_mask(root / k / f"Part{p}_label.bmp", mask)
    return {"ksdd1": {"test": 12, "anomalous": 3, "pool": 9}}


def make_ksdd2(root: Path, seed: int = 3) -> dict[str, dict[str, int]]:
    """KSDD2: train/ and test/ with <id>.png and <id>_GT.png."""
    rng = np.random.default_rng(seed)
    n = 0
    for split, labels in (("train", [0, 0, 1, 0, 0]), ("test", [0, 1, 1, 0])):
        for lab in labels:
            img, mask = _pair(rng, bool(lab), rgb=True)
            _save(root / split / f"{10000 + n}.png", img)
            _save_mask(root / split / f"{10000 + n}_GT.png", mask)
            n += 1
    return {"ksdd2": {"test": 4, "anomalous": 2, "pool": 4}}


MTD_DEFECTS = {"MT_Blowhole": 3, "MT_Crack": 2, "MT_Uneven": 1}


def make_mtd(root: Path, seed: int = 4, n_free: int = 14) -> dict[str, dict[str, int]]:
    """MTD: MT_<type>/Imgs/<name>.jpg with <name>.png masks (0/255 with a faint fringe); MT_Free normal."""
    rng = np.random.default_rng(seed)
    for i in range(n_free):
        img, mask = _pair(rng, False)
        _save(root / "MT_Free" / "Imgs" / f"exp0_num_{i}.jpg", img)
        _save_mask(root / "MT_Free" / "Imgs" / f"exp0_num_{i}.png", mask)
    for d, n in MTD_DEFECTS.items():
        for i in range(n):
            img, mask = _pair(rng, True)
            _save(root / d / "Imgs" / f"exp1_num_{i}.jpg", img)
            _save_mask(root / d / "Imgs" / f"exp1_num_{i}.png", mask, "fringe")
    (root / "README.md").write_text("Magnetic tile defects\n")
    n_def = sum(MTD_DEFECTS.values())
    return {"mtd": {"test": n_free + n_def, "anomalous": n_def, "pool": n_free}}


def make_dagm(root: Path, seed: int = 5) -> dict[str, dict[str, int]]:
    """DAGM 2007: ClassN/{Train,Test}/NNNN.PNG, Label/Labels.txt and NNNN_label.PNG."""
    rng = np.random.default_rng(seed)
    expected = {}
    for cls, (train_flags, test_flags) in {"Class1": ([0, 1, 0, 0], [1, 0, 1]), "Class10": ([0, 0, 0], [0, 1])}.items():
        for split, flags in (("Train", train_flags), ("Test", test_flags)):
            lines = ["1"]
            for i, f in enumerate(flags):
                img, mask = _pair(rng, bool(f))
                name = f"{i + 1:04d}.PNG"
                _save(root / cls / split / name, img)
                label_name = f"{i + 1:04d}_label.PNG" if f else "0"
                if f:
                    _save_mask(root / cls / split / "Label" / label_name, mask)
                lines.append(f"{i + 1}\t{f}\t{name}\t0\t{label_name}")
            (root / cls / split / "Label").mkdir(parents=True, exist_ok=True)
            (root / cls / split / "Label" / "Labels.txt").write_text("\n".join(lines) + "\n")
        expected[cls] = {"test": len(test_flags), "anomalous": sum(test_flags), "pool": train_flags.count(0)}
    return expected


def make_visa(root: Path, seed: int = 6) -> dict[str, dict[str, int]]:
    """VisA: <object>/Data/Images/{Normal,Anomaly}/*.JPG, Masks/Anomaly/*.png (palette), split_csv/1cls.csv."""
    rng = np.random.default_rng(seed)
    rows = []
    expected = {}
    for obj, (n_train, n_test_norm, n_anom) in {"candle": (4, 2, 2), "pcb1": (3, 1, 3)}.items():
        k = 0
        for split, n, anomalous in (("train", n_train, False), ("test", n_test_norm, False), ("test", n_anom, True)):
            for _ in range(n):
                img, mask = _pair(rng, anomalous, rgb=True)
                sub = "Anomaly" if anomalous else "Normal"
                rel = f"{obj}/Data/Images/{sub}/{k:04d}.JPG"
                _save(root / rel, img)
                mrel = ""
                if anomalous:
                    mrel = f"{obj}/Data/Masks/Anomaly/{k:04d}.png"
                    _save_mask(root / mrel, mask, "palette")
                rows.append([obj, split, "anomaly" if anomalous else "normal", rel, mrel])
                k += 1
        expected[obj] = {"test": n_test_norm + n_anom, "anomalous": n_anom, "pool": n_train}
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    with (root / "split_csv" / "1cls.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["object", "split", "label", "image", "mask"])
        w.writerows(rows)
    return expected


def make_folder(root: Path, seed: int = 7, n_normal: int = 6, n_good: int = 3, n_bad: int = 4) -> dict[str, dict[str, int]]:
    """`folder`: normal/, test/ (flat), masks/<stem>_mask.png (0/1 encoding) for defective ones."""
    rng = np.random.default_rng(seed)
    for i in range(n_normal):
        _save(root / "normal" / f"n{i}.png", _pair(rng, False, rgb=True)[0])
    for i in range(n_good):
        _save(root / "test" / f"good_{i}.png", _pair(rng, False, rgb=True)[0])
    for i in range(n_bad):
        img, mask = _pair(rng, True, rgb=True)
        _save(root / "test" / f"bad_{i}.png", img)
        _save_mask(root / "masks" / f"bad_{i}_mask.png", mask, "01")
    return {root.name: {"test": n_good + n_bad, "anomalous": n_bad, "pool": n_normal}}


LAYOUTS = {
    "mvtec": make_mvtec_like,
    "mpdd": make_mvtec_like,
    "dtd-synthetic": make_mvtec_like,
    "btad": make_btad,
    "ksdd1": make_ksdd1,
    "ksdd2": make_ksdd2,
    "mtd": make_mtd,
    "dagm2007": make_dagm,
    "visa": make_visa,
    "folder": make_folder,
}
