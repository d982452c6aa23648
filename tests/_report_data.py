"""Builds real evaluation / run folders from synthetic images for the report, panel and compare tests.

Images are textures with dark elliptical "defects"; score maps are a blob at the defect plus noise, so
metrics computed from them are real (not constants) and differ between the two fake "profiles".
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.evaluation.records import EvalRecord, save_record
from iapas.io.atomic import atomic_write_json
from iapas.types import Box, Prediction

EVAL = 48  # evaluation resolution of the cached maps


def make_dataset(root: Path, categories: tuple[str, ...] = ("tile", "brick"), n_good: int = 3, n_bad: int = 5,
                 size: tuple[int, int] = (160, 120), seed: int = 0) -> list[dict]:
    """Write PNG images and masks; return one dict per test image (path, mask, label, defect type)."""
    rng = np.random.default_rng(seed)
    items = []
    w, h = size
    yy, xx = np.mgrid[:h, :w]
    for ci, cat in enumerate(categories):
        for k in range(n_good + n_bad):
            label = int(k >= n_good)
            base = 90 + 60 * ci + rng.normal(0, 12, (h, w))
            base += 25 * np.sin(xx / (5 + ci)) * np.cos(yy / 7)
            mask = np.zeros((h, w), bool)
            defect = "good"
            if label:
                defect = ("crack", "hole")[k % 2]
                cy, cx = rng.integers(20, h - 20), rng.integers(20, w - 20)
                ry, rx = rng.integers(6, 14), rng.integers(6, 18)
                mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
                base[mask] -= 70
            rgb = np.clip(np.stack([base, base * 0.95, base * 0.9], -1), 0, 255).astype(np.uint8)
            folder = root / cat / defect
            folder.mkdir(parents=True, exist_ok=True)
            img_path = folder / f"{k:03d}.png"
            Image.fromarray(rgb).save(img_path)
            mask_path = None
            if label:
                mask_path = root / cat / "ground_truth" / defect / f"{k:03d}_mask.png"
                mask_path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
            items.append({"category": cat, "path": str(img_path), "mask_path": str(mask_path) if mask_path else None,
                          "mask": mask, "label": label, "defect": defect, "size": (w, h)})
    return items


def fake_scores(item: dict, quality: float, rng: np.random.Generator) -> np.ndarray:
    """Score map at the loaded image size: a blob on the defect (stronger with `quality`) plus noise."""
    from scipy.ndimage import gaussian_filter

    mask = item["mask"].astype(np.float32)
    blob = gaussian_filter(mask, 3) * quality * rng.uniform(0.25, 1.0)
    noise = gaussian_filter(rng.random(mask.shape).astype(np.float32), 2) * 0.9 - 0.15
    return np.clip(blob + noise, 0, 1).astype(np.float32)


def fake_prediction(item: dict, score: np.ndarray, profile: str) -> Prediction:
    ys, xs = np.nonzero(score > 0.45)
    boxes, removed = [], []
    if len(xs):
        boxes.append(Box((float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())), "crack", float(score.max())))
    w, h = item["size"]
    removed.append(Box((2.0, 2.0, w - 3.0, h - 3.0), "abnormal", 0.21, removed_by="size_filter"))
    return Prediction(path=item["path"], score_map=score, mask=score > 0.45, boxes=boxes,
                      image_score=float(score.max()), profile=profile, removed_boxes=removed,
                      object_box=Box((1.0, 1.0, w - 2.0, h - 2.0), "tile", 0.7))


def _resize(arr: np.ndarray, mode: str) -> np.ndarray:
    if mode == "F":
        return np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((EVAL, EVAL), Image.BILINEAR))
    return np.asarray(Image.fromarray(arr.astype(np.uint8) * 255).resize((EVAL, EVAL), Image.NEAREST)) > 127


def make_eval_folder(out: Path, items: list[dict], profile: str = "offline", quality: float = 1.0,
                     seed: int = 111, dataset: str = "mtd", protocol: str = "standard") -> Path:
    """An evaluation folder as `iapas evaluate` writes it: records, contexts, metrics.json (real values)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from iapas.evaluation.cache import eval_digest, record_path

    rng = np.random.default_rng(int(quality * 1000))
    config = PipelineConfig(profile=profile)
    per_cat: dict[str, dict] = {}
    for i, item in enumerate(items):
        score = fake_scores(item, quality, rng)
        pred = fake_prediction(item, score, profile)
        rec = EvalRecord(category=item["category"], seed=seed, image_path=item["path"], mask_path=item["mask_path"],
                         defect_type=item["defect"], label=item["label"], score_map=_resize(score, "F"),
                         gt_mask=_resize(item["mask"], "L"), image_score=pred.image_score, prediction=pred.to_json())
        digest = eval_digest(config.model_copy(update={"seed": seed, "kind": "object"}), profile, EVAL)
        save_record(record_path(out, item["category"], seed, item["path"], digest), rec)
        acc = per_cat.setdefault(item["category"], {"s": [], "g": [], "is": [], "il": []})
        acc["s"].append(rec.score_map.ravel())
        acc["g"].append(rec.gt_mask.ravel())
        acc["is"].append(rec.image_score)
        acc["il"].append(rec.label)
    cats = {}
    for cat, acc in per_cat.items():
        s, g = np.concatenate(acc["s"]), np.concatenate(acc["g"])
        cats[cat] = {"pixel_ap": float(average_precision_score(g, s)), "pixel_f1_max": 0.5,
                     "pixel_auroc": float(roc_auc_score(g, s)), "pixel_aupro": None,
                     "image_ap": float(average_precision_score(acc["il"], acc["is"])),
                     "image_auroc": float(roc_auc_score(acc["il"], acc["is"])), "image_f1_max": 0.8,
                     "n_images": len(acc["il"]), "n_anomalous": int(sum(acc["il"]))}
        ctx = Context(profile=profile, config=PipelineConfig(), seed=seed, tags=["tile", "surface", "grey"],
                      removed_tags=["crack"], object_tag=cat, defect_words=["crack", "hole", "chipped edge"],
                      final_prompt=["crack", "hole", "chipped edge", "abnormal", "defect", cat],
                      llm_raw_answer="crack, hole, chipped edge", warnings=["tagger fell back to CLIP"])
        ctx.save(out / "contexts" / cat / f"seed{seed}.json")
    keys = [k for k in next(iter(cats.values())) if not k.startswith("n_")]
    mean = {k: (float(np.mean([c[k] for c in cats.values()])) if all(c[k] is not None for c in cats.values()) else None)
            for k in keys}
    atomic_write_json(out / "metrics.json", {
        "dataset": dataset, "profile": profile, "protocol": protocol, "seeds": [seed], "categories": cats,
        "mean": mean, "images_per_second": 3.5, "config": config.model_dump(mode="json"), "eval_size": EVAL,
        "kinds": {c: "object" for c in cats},
        "failures": [{"path": "/data/broken.png", "error": "corrupt or truncated image"}]})
    return out


def make_run_folder(out: Path, items: list[dict], profile: str, quality: float, overlays: bool = False) -> Path:
    """A `iapas run` folder: NAME.npy + NAME.json (with "path") per image, and summary.json."""
    rng = np.random.default_rng(int(quality * 1000) + 7)
    out.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i, item in enumerate(items):
        score = fake_scores(item, quality, rng)
        pred = fake_prediction(item, score, profile)
        name = f"{item['category']}_{i:03d}"
        np.save(out / f"{name}.npy", score)
        files = {"score_map": f"{name}.npy", "json": f"{name}.json"}
        if overlays:
            from iapas.outputs.overlay import render_overlay

            render_overlay(np.asarray(Image.open(item["path"]).convert("RGB")), pred).save(out / f"{name}_overlay.png")
            files["overlay"] = f"{name}_overlay.png"
        meta = pred.to_json()
        meta.update({"name": name, "files": files})
        (out / f"{name}.json").write_text(json.dumps(meta))
        inputs.append({"path": item["path"], "name": name, "status": "ok"})
    failures = [{"path": "/lot7/unreadable.png", "error": "corrupt or truncated image"}]
    inputs.append({"path": failures[0]["path"], "name": "unreadable", "status": "failed", "error": failures[0]["error"]})
    (out / "summary.json").write_text(json.dumps({"profile": profile, "inputs": inputs, "failures": failures}))
    return out
