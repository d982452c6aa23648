"""Offline profile on the real MTD (Magnetic Tile Defect) dataset, both protocols, through the real harness.

    python bench/bench_mtd.py --root ../shared/datasets/mtd --out /tmp/bench_mtd [--feature-size N] [--limit N]
                              [--refine segments] [--seed N]

Runs `run_evaluation` once with --protocol standard (256 px bilinear records) and once with --protocol
paper (the official IAP-AS evaluation: its selection, 400 px bicubic records, per-map and per-category
min-max; Stage 1 is reused, Stage 2 runs again for the other resolution), and prints
pixel AP / F1-max / AUROC / AUPRO (%) and images/s (model loading and Stage 1 excluded) for both,
next to the paper's IAP-AS numbers on MTD (pixel AP 27.77, F1-max 41.63).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import get_args

PAPER = {"pixel_ap": 27.77, "pixel_f1_max": 41.63}
KEYS = ("pixel_ap", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_auroc")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from iapas.config import PipelineConfig, build_config
    from iapas.evaluation.harness import EvalOptions, run_evaluation

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mtd"))
    ap.add_argument("--out", default="/tmp/bench_mtd")
    ap.add_argument("--feature-size", type=int, default=None)
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--refine", choices=get_args(PipelineConfig.model_fields["refine"].annotation), default=None)
    ap.add_argument("--seed", type=int, default=111, help="seed of the r = 10 normal-image sample")
    args = ap.parse_args()
    config = build_config(profile="offline", feature_size=args.feature_size, backbone=args.backbone,
                          refine=args.refine)
    rows = {}
    for protocol in ("standard", "paper"):
        m = run_evaluation("mtd", Path(args.root), Path(args.out), config,
                           EvalOptions(protocol=protocol, limit=args.limit, seeds=[args.seed], progress=False))
        rows[protocol] = m
        mean = m["mean"]
        print(f"[{protocol}] profile={m['profile']} n_images={m['categories']['mtd'].get('n_images')} "
              + " ".join(f"{k}={100 * mean[k]:.2f}" for k in KEYS if mean.get(k) is not None)
              + f" images_per_second={m['images_per_second']:.2f}", flush=True)
    p = rows["paper"]["mean"]
    beat = all(100 * p[k] > v for k, v in PAPER.items())
    print(f"paper IAP-AS on MTD: pixel AP {PAPER['pixel_ap']}, F1-max {PAPER['pixel_f1_max']}; "
          f"offline (paper protocol) beats both: {beat}")
    print(json.dumps({k: {kk: rows[k]["mean"].get(kk) for kk in KEYS} for k in rows}))


if __name__ == "__main__":
    main()
