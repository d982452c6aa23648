"""`iapas evaluate --protocol paper` against an independent re-implementation of the official evaluation.

The reference below is written from the official code's logic (sybeam27/IAP-ZSAS `test_zsas.py` and
`utils/function.py`: the evaluation loop, `load_image`, `normalize`, `process_specify_resolution`,
`eval_zsas_last_2`, `calculate_max_f1`, the CSV's rounding and mean), in float64 and with OpenCV and
scikit-learn, and never calls iapas: masks read by `cv2.imread(..., IMREAD_GRAYSCALE)` and binarised
with `cv2.threshold(gt, 128, 255, THRESH_BINARY)` (grey > 128), each raw map min-max normalised at full
resolution ("base": not), maps resized bicubic and masks nearest to 400 x 400, the category's maps
normalised together, image score = max, AP by scikit-learn, F1-max over `np.linspace(0, 1, 100)` with
`>=`, every figure rounded to 2 decimals (in %) and the mean taken over those.

The maps come from a small registered profile that returns, for each image, a prescribed raw map:
sums of box masks times box scores (flat plateaus, many ties, as Grounding DINO + SAM give), soft
gradients, overlaps and an empty prediction; the masks have soft edges and exact 128 values.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score
from typer.testing import CliRunner

import iapas.pipeline
from cli_apps import command_app
from iapas.context import Context
from iapas.types import Prediction

EVAL = 400
H, W = 60, 84


# ---------------------------------------------------------------- the data: soft-edged masks, prescribed maps


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))


def soft_mask(rng: np.random.Generator, level: int | None = None) -> np.ndarray:
    """uint8 mask: a defect blob with a soft ramp (values 1..254), some pixels exactly 128 and 129.

    `level` fills the defect with that single grey value instead (e.g. 128: a mask the official rule
    reads as empty)."""
    m = np.zeros((H, W), np.uint8)
    y0, x0 = int(rng.integers(5, H - 25)), int(rng.integers(5, W - 30))
    if level is not None:
        m[y0:y0 + 12, x0:x0 + 16] = level
        return m
    yy, xx = np.mgrid[0:H, 0:W]
    d = np.hypot((yy - y0 - 8) / 8.0, (xx - x0 - 10) / 10.0)
    m = np.clip(255 * (1.6 - d), 0, 255).astype(np.uint8)  # a soft edge ramp through every level
    m[y0, x0:x0 + 10] = 128  # exact boundary values: 128 is background, 129 defect
    m[y0 + 1, x0:x0 + 10] = 129
    return m


def raw_map(key: str) -> np.ndarray:
    """The prescribed raw score map of one image (float32, H x W), as the paper profile's sum s_i m_i."""
    rng = _rng(key)
    kind = int(rng.integers(0, 4))
    m = np.zeros((H, W), np.float32)
    if kind == 3 and "good" in key:
        return m  # no box found: an all-zero map (official normalize keeps it zero)
    for _ in range(int(rng.integers(1, 4))):  # overlapping boxes with Grounding DINO-like scores
        y0, x0 = int(rng.integers(0, H - 10)), int(rng.integers(0, W - 10))
        m[y0:y0 + int(rng.integers(5, 30)), x0:x0 + int(rng.integers(5, 40))] += np.float32(rng.uniform(0.1, 0.5))
    if kind == 1:  # a soft gradient over a plateau
        m += np.linspace(0, 0.05, W, dtype=np.float32)[None, :]
    if kind == 2:  # a flat offset: ties everywhere outside the boxes
        m += np.float32(0.2)
    return m


class PrescribedMaps:
    """A registered profile that returns `raw_map(image name)` for each image; Stage 1 records nothing."""

    name = "offline"

    def __init__(self, profile: str, config: Any) -> None:
        self.config = config

    def fit(self, normal: list[Any]) -> Context:
        return Context(profile="offline", config=self.config, normal_images=[im.path for im in normal],
                       seed=self.config.seed)

    def predict(self, image: Any, context: Context) -> Prediction:
        m = raw_map(Path(image.path).parent.name + "/" + Path(image.path).name)
        return Prediction(path=image.path, score_map=m, mask=m > 0, boxes=[], image_score=float(m.max()),
                          profile="offline")


def _save_img(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


def _save_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)


def make_mvtec(root: Path) -> dict[str, list[tuple[Path, Path | None, int]]]:
    """MVTec-AD layout, three categories; 'cable' has only masks at exactly 128 (no defect pixel officially).

    Returns what the official loop scores per category: (image, mask or None for test/good, label)."""
    spec = {"bottle": {"good": 3, "broken": 3, "hole": 2}, "cable": {"good": 2, "cut": 3}, "screw": {"good": 2, "tip": 4}}
    scored: dict[str, list[tuple[Path, Path | None, int]]] = {}
    n = 0
    for cat, groups in spec.items():
        for i in range(3):
            n += 1
            _save_img(root / cat / "train" / "good" / f"{i:03d}.png", n)
        rows = []
        for group, count in groups.items():
            for i in range(count):
                n += 1
                img = root / cat / "test" / group / f"{i:03d}.png"
                _save_img(img, n)
                if group == "good":
                    rows.append((img, None, 0))
                    continue
                gt = root / cat / "ground_truth" / group / f"{i:03d}_mask.png"
                _save_mask(gt, soft_mask(_rng(f"{cat}{group}{i}"), 128 if cat == "cable" else None))
                rows.append((img, gt, 1))
        scored[cat] = rows
    return scored


def make_mtd(root: Path) -> dict[str, list[tuple[Path, Path | None, int]]]:
    """MTD layout; every tile is scored officially, the MT_Free ones (all-black masks) included."""
    rows = []
    n = 0
    for folder, count in (("MT_Blowhole", 4), ("MT_Crack", 3), ("MT_Free", 12)):
        for i in range(count):
            n += 1
            img = root / folder / "Imgs" / f"exp{n}_num_{i}.jpg"
            _save_img(img, 500 + n)
            mask = np.zeros((H, W), np.uint8) if folder == "MT_Free" else soft_mask(_rng(f"{folder}{i}"))
            _save_mask(img.with_suffix(".png"), mask)
            rows.append((img, img.with_suffix(".png"), 0 if folder == "MT_Free" else 1))
    return {"mtd": rows}


# ---------------------------------------------------------------- the official evaluation, re-implemented


def official_normalize(scores: Any) -> np.ndarray:
    """utils/function.py `normalize`: min-max over everything given; zeros when min == max."""
    hi, lo = np.max(scores), np.min(scores)
    if (lo == 0 and hi == 0) or lo == hi:
        return np.zeros_like(np.asarray(scores, dtype=np.float64))
    return (np.asarray(scores, dtype=np.float64) - lo) / (hi - lo)


def official_max_f1(gt: np.ndarray, pred: np.ndarray) -> float:
    """`calculate_max_f1`: 100 thresholds in [0, 1], prediction >= threshold, best F1 (0 if none)."""
    best = 0.0
    for t in np.linspace(0, 1, 100):
        binary = (pred >= t).astype(int)
        tp = (gt * binary).sum()
        fp = binary.sum() - tp
        fn = gt.sum() - tp
        precision = tp / (tp + fp) if (tp + fp) > 0 else 0
        recall = tp / (tp + fn) if (tp + fn) > 0 else 0
        f1 = (2 * precision * recall / (precision + recall)) if (precision + recall) > 0 else 0
        best = max(best, f1)
    return float(best)


def official_category(rows: list[tuple[Path, Path | None, int]], per_image: bool) -> dict[str, float]:
    """One category through the official loop; values in % and rounded as the official CSV."""
    scores, gts, labels = [], [], []
    for img, gt_path, label in rows:
        raw = np.asarray(raw_map(img.parent.name + "/" + img.name), dtype=np.float64)
        scores.append(official_normalize(raw) if per_image else raw)
        gt = np.zeros((H, W), np.uint8) if gt_path is None else cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        _, binary = cv2.threshold(gt, 128, 255, cv2.THRESH_BINARY)
        gts.append((binary == 255).astype(np.uint8))
        labels.append(label)
    scores = [cv2.resize(s, (EVAL, EVAL), interpolation=cv2.INTER_CUBIC) for s in scores]
    gts = [cv2.resize(g, (EVAL, EVAL), interpolation=cv2.INTER_NEAREST) for g in gts]
    maps = np.array(official_normalize(scores))
    gt_masks = np.asarray(gts, dtype=int)
    img_scores = maps.reshape(maps.shape[0], -1).max(axis=1)
    with pytest.warns(UserWarning) if gt_masks.sum() == 0 else _no_warning():
        ap = average_precision_score(gt_masks.ravel(), maps.ravel()) * 100
    return {
        "pixel_ap": ap,
        "pixel_f1_max": official_max_f1(gt_masks.ravel(), maps.ravel()) * 100,
        "image_ap": average_precision_score(np.array(labels), img_scores) * 100,
        "n_defect_pixels": int(gt_masks.sum()),
    }


class _no_warning:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def official_table(scored: dict[str, list[tuple[Path, Path | None, int]]], per_image: bool) -> dict[str, Any]:
    cats = {c: official_category(rows, per_image) for c, rows in sorted(scored.items())}
    mean = {k: float(np.mean([round(v[k], 2) for v in cats.values()])) for k in ("pixel_ap", "pixel_f1_max", "image_ap")}
    return {"categories": cats, "mean": mean}


# ---------------------------------------------------------------- iapas evaluate --protocol paper, compared


def run_iapas(dataset: str, root: Path, out: Path, *extra: str) -> dict[str, Any]:
    from iapas.cli import evaluate

    res = CliRunner().invoke(command_app(evaluate), [
        "evaluate", "--dataset", dataset, "--root", str(root), "--out", str(out), "--protocol", "paper",
        "--profile", "offline", "--num-normal", "2", "--threads", "1", *extra])
    assert res.exit_code == 0, res.output
    return json.loads((out / "metrics.json").read_text(encoding="utf-8")) | {"output": res.output}


@pytest.fixture()
def prescribed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iapas.pipeline, "make_runner", PrescribedMaps)


@pytest.mark.slow
@pytest.mark.parametrize("baseline", [False, True], ids=["full", "base-row"])
def test_paper_protocol_equals_the_official_evaluation_on_mvtec(tmp_path: Path, prescribed: None, baseline: bool) -> None:
    scored = make_mvtec(tmp_path / "mvtec")
    ref = official_table(scored, per_image=not baseline)
    got = run_iapas("mvtec", tmp_path / "mvtec", tmp_path / "out", *(["--baseline"] if baseline else []))
    assert ref["categories"]["cable"]["n_defect_pixels"] == 0  # masks at exactly 128 are background
    assert all(ref["categories"][c]["n_defect_pixels"] > 0 for c in ("bottle", "screw"))
    for cat, row in ref["categories"].items():
        mine = got["categories"][cat]
        assert mine["n_images"] == len(scored[cat])  # test/good included on MVTec-AD
        for key in ("pixel_ap", "pixel_f1_max", "image_ap"):
            assert 100 * mine[key] == pytest.approx(row[key], abs=1e-6), (cat, key)
    for key, value in ref["mean"].items():
        assert 100 * got["mean"][key] == pytest.approx(value, abs=1e-6), key
    assert got["categories"]["cable"]["pixel_ap"] == 0.0  # counted as 0, not left out of the mean
    assert "cable" in got["output"] and "count as 0" in got["output"]  # the note is printed


@pytest.mark.slow
def test_paper_protocol_equals_the_official_evaluation_on_mtd(tmp_path: Path, prescribed: None) -> None:
    scored = make_mtd(tmp_path / "mtd")
    ref = official_table(scored, per_image=True)
    got = run_iapas("mtd", tmp_path / "mtd", tmp_path / "out")
    mine = got["categories"]["mtd"]
    assert mine["n_images"] == 19  # the 2 MT_Free tiles Stage 1 sampled are scored too
    for key in ("pixel_ap", "pixel_f1_max", "image_ap"):
        assert 100 * mine[key] == pytest.approx(ref["categories"]["mtd"][key], abs=1e-6), key
    assert "also the normal images" in got["selection"]["mtd"]


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_the_reference_sees_the_rules_that_changed(tmp_path: Path) -> None:
    """The comparison can fail: the old rules (>= 128, float32 resize before normalising) give other values."""
    scored = make_mvtec(tmp_path / "mvtec")
    rows = scored["bottle"]
    ref = official_category(rows, per_image=True)
    maps, gts = [], []
    for img, gt_path, _ in rows:
        raw = raw_map(img.parent.name + "/" + img.name)
        lo, hi = float(raw.min()), float(raw.max())
        m = cv2.resize(raw, (EVAL, EVAL), interpolation=cv2.INTER_CUBIC)  # float32, resized first
        maps.append((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m))
        gt = np.zeros((H, W), np.uint8) if gt_path is None else cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        gts.append(cv2.resize((gt >= 128).astype(np.uint8), (EVAL, EVAL), interpolation=cv2.INTER_NEAREST))
    s = np.array(maps)
    s = (s - s.min()) / (s.max() - s.min())
    old_ap = average_precision_score(np.array(gts).ravel(), s.ravel()) * 100
    assert abs(old_ap - ref["pixel_ap"]) > 1e-3
