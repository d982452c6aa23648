"""Time the paper profile's Stage 2 code path on real images with tiny random Grounding DINO + SAM.

    python bench/bench_paper_tiny.py --images /work/shared/datasets/mtd/MT_Crack/Imgs [--limit 20] [--threads 1]

The models are the test suite's tiny random checkpoints (tests/tiny/detection_models.py), built into
a temporary folder and loaded through the same transformers loaders users run, so the numbers
measure iapas's own overhead (image loading, processors, two detector passes, NMS, size filter,
SAM batch decoding, score map) rather than model quality: detections of random weights mean nothing.
Prints load time, first-call time, and the median / p90 per-image time over the rest.
Target: median well under 1 s per image on CPU.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True, help="folder of images (e.g. MTD MT_Crack/Imgs)")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    args = ap.parse_args()

    import torch

    from iapas.config import PipelineConfig
    from iapas.io.images import load_image
    from iapas.io.listing import list_images
    from iapas.profiles.paper import PaperProfile
    from iapas.settings import resolve
    from tiny.detection_models import build_tiny_grounding_dino, build_tiny_sam

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = [p for p in list_images([args.images]) if p.suffix.lower() == ".jpg"][: args.limit]
    if len(paths) < 2:
        raise SystemExit(f"need at least 2 .jpg images in {args.images}")
    with tempfile.TemporaryDirectory() as tmp:
        gd = build_tiny_grounding_dino(Path(tmp) / "gdino")
        sam = build_tiny_sam(Path(tmp) / "sam")
        cfg = PipelineConfig(
            profile="paper", detector=str(gd), segmenter=str(sam), tagger="none", object_name="magnetic tile",
            llm="none", device="cpu", kind="texture",
        )
        t0 = time.perf_counter()
        prof = PaperProfile(resolve(cfg))
        images = [load_image(p) for p in paths]
        ctx = prof.fit(images[:1])
        _ = prof.detector, prof.segmenter
        load_s = time.perf_counter() - t0
        times = []
        n_boxes = 0
        for i, im in enumerate(images):
            t = time.perf_counter()
            pred = prof.predict(im, ctx)
            times.append(time.perf_counter() - t)
            n_boxes += len(pred.boxes)
        rest = sorted(times[1:])
        print(f"images: {len(images)} from {args.images} (sizes e.g. {images[0].size}), torch threads {torch.get_num_threads()}")
        print(f"prompt: {ctx.final_prompt}; kept boxes in total: {n_boxes}")
        print(f"load + fit: {load_s:.2f} s; first predict: {times[0]:.3f} s")
        print(f"per image after the first: median {statistics.median(rest):.3f} s, p90 {rest[int(0.9 * (len(rest) - 1))]:.3f} s")


if __name__ == "__main__":
    main()
