"""Operating-point figures of decision-rule variants, from the cached maps of a `bench/suite.py` run.

    python bench/operating_rules.py OUT [--zero-shot] [--datasets mtd,bottle,...] --variant '{"plateau_texture": 0.7}' ...

The maps are not recomputed: each category's cached standard-protocol records (calibrated maps at the
evaluation size) and, few-shot, its context (pixel calibration and the ten leave-one-out map maxima) are
read back, and the verdict and mask thresholds are rebuilt by `stages.calibration.decision_from_maxima`
with the variant's parameters. Zero-shot, the reference pool is rebuilt from the dataset's test order
(`stages.mutual.reference_pool`) and the batch's floor / threshold ratio from the verdict the run stored.
The figures are those of `evaluation.operating` (the written masks' rule). Variant keys (defaults: the
settings): spread_object, spread_texture (verdict spread), relative_object, relative_texture,
plateau_object, plateau_texture (null: no re-cut), ok_level (zero-shot mask from the pool's ok parts),
share (stages.calibration.MASK_SHARE).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402  (the suite's dataset rows and layout)

from iapas.data import get_reader  # noqa: E402
from iapas.evaluation.harness import limit_samples  # noqa: E402
from iapas.evaluation.operating import OperatingPoint, operating_metrics  # noqa: E402
from iapas.evaluation.records import iter_records  # noqa: E402
from iapas.metrics import f1_max  # noqa: E402
from iapas.settings import MASK_PLATEAU, MASK_RELATIVE, VERDICT_SPREAD_ZERO_SHOT, verdict_spread  # noqa: E402
from iapas.stages import calibration  # noqa: E402
from iapas.stages.calibration import BATCH_QUANTILE, decision_from_maxima, excess_ratio  # noqa: E402
from iapas.stages.mutual import reference_pool  # noqa: E402


def category_arrays(dest: Path, cat: str) -> dict[str, Any]:
    recs = [r for r in iter_records(dest, cat) if r.map_range is not None]  # standard protocol only
    recs.sort(key=lambda r: r.image_path)
    return {"paths": [r.image_path for r in recs], "maps": np.stack([r.score_map for r in recs]).astype(np.float32),
            "gt": np.stack([r.gt_mask for r in recs]).astype(bool), "labels": np.array([bool(r.label) for r in recs]),
            "scores": np.array([r.image_score for r in recs]), "stored": recs[0].prediction.get("thresholds") or {}}


def zero_shot_inputs(part: suite.SuiteDataset, cat: str, a: dict[str, Any], limit: int | None, references: int = 24):
    """Pool maxima and (threshold, floor) on a unit scale, rebuilt from the stored verdict."""
    split = get_reader(part.reader).load(part.root, cat)
    order = [str(s.image_path) for s in limit_samples(split.test_for([], "standard"), limit)]
    pos = {p: i for i, p in enumerate(a["paths"])}
    pool = [pos[order[j]] for j in reference_pool(len(order), references)]
    stored = a["stored"]
    factor = float(re.search(r"x ([0-9.]+) \(log-normal", stored["verdict_rule"]).group(1))
    xq = float(np.quantile(excess_ratio(a["scores"][pool]), BATCH_QUANTILE))
    phi = (float(excess_ratio(stored["verdict"])) - factor * xq) / (factor - 1.0)  # floor / (threshold - floor)
    floor, threshold = phi, phi + 1.0
    maxima = [floor + float(excess_ratio(s)) for s in a["scores"][pool]]
    highs = [floor + float(np.percentile(excess_ratio(a["maps"][j]), 99.5)) for j in pool]
    return maxima, highs, threshold, floor


def evaluate(part: suite.SuiteDataset, dest: Path, cat: str, kind: str, variant: dict[str, Any], zero_shot: bool,
             limit: int | None) -> dict[str, float]:
    a = category_arrays(dest, cat)
    ref = None if zero_shot else json.loads((dest / "contexts" / cat / "seed111.json").read_text())["reference"]
    # few-shot, the spread of the context's map: one scale or the deep + fine sum
    prior = VERDICT_SPREAD_ZERO_SHOT[kind] if ref is None else verdict_spread(kind, bool(ref.get("scales")))
    spread = float(variant.get(f"spread_{kind}", prior))
    relative = float(variant.get(f"relative_{kind}", MASK_RELATIVE[kind]))
    plateau = variant.get(f"plateau_{kind}", MASK_PLATEAU[kind])
    calibration.MASK_SHARE = float(variant.get("share", 0.75))
    if zero_shot:
        maxima, highs, t, f = zero_shot_inputs(part, cat, a, limit)
        d = decision_from_maxima(maxima, t, f, spread, 0.02, "pool", quantile=BATCH_QUANTILE, plateau=plateau, relative=relative)
        if variant.get("ok_level", True):
            vraw = f + (t - f) * float(excess_ratio(d.verdict))
            below = [h for m, h in zip(maxima, highs) if m < vraw]
            if below:
                d = decision_from_maxima(maxima, t, f, spread, 0.02, "pool", quantile=BATCH_QUANTILE, plateau=plateau,
                                         relative=relative, mask_base=float(np.median(below)))
    else:
        assert ref is not None
        d = decision_from_maxima(ref["normal_image_max"], ref["mask_threshold"], ref["score_floor"], spread, 0.02,
                                 "normals", plateau=plateau, relative=relative)
    point = OperatingPoint(d.verdict, d.mask, d.mask_relative, d.rule, d.mask_plateau)
    o = operating_metrics(a["maps"], a["gt"], a["labels"], a["scores"], point)
    o["image_f1_max"] = f1_max(a["scores"], a["labels"])
    o["pixel_f1_max"] = f1_max(a["maps"].ravel(), a["gt"].ravel()) if a["gt"].any() else float("nan")
    return o


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the --out folder of a bench/suite.py run (standard protocol)")
    ap.add_argument("--zero-shot", action="store_true")
    ap.add_argument("--datasets", default=",".join(suite.DATASETS))
    ap.add_argument("--limit", type=int, default=None, help="the --limit of the suite run")
    ap.add_argument("--variant", action="append", default=[], help="JSON object of rule parameters (repeatable)")
    args = ap.parse_args(argv)
    rows, _ = suite.suite_datasets(args.datasets.split(","), args.out)
    for variant in [json.loads(v) for v in args.variant] or [{}]:
        print(json.dumps(variant))
        for parts in rows:
            figs = []
            for part in parts:
                dest = args.out / part.name / (part.root.name if part.reader == "folder" else "")
                if not (dest / "cache").is_dir():
                    continue
                kind = part.kind or ("texture" if part.reader == "mtd" else "object")
                for cat_dir in sorted((dest / "cache").iterdir()):
                    figs.append(evaluate(part, dest, cat_dir.name, kind, variant, args.zero_shot, args.limit))
            if not figs:
                continue
            m = {k: float(np.nanmean([f[k] for f in figs])) for k in
                 ("good_flagged", "defective_missed", "image_f1", "image_f1_max", "pixel_f1", "pixel_f1_max")}
            print(f"  {parts[0].name:10s} flagged {100 * m['good_flagged']:5.1f}  missed {100 * m['defective_missed']:5.1f}  "
                  f"image F1 {100 * m['image_f1']:5.1f} / {100 * m['image_f1_max']:5.1f} ({m['image_f1'] / m['image_f1_max']:.2f})  "
                  f"pixel F1 {100 * m['pixel_f1']:5.1f} / {100 * m['pixel_f1_max']:5.1f} ({m['pixel_f1'] / m['pixel_f1_max']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
