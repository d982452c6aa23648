"""Time one overlay per image (the `run` command draws one for every input). Target: < 0.3 s CPU each.

    python bench/bench_overlay.py
"""
from __future__ import annotations

import time

import numpy as np

from iapas.outputs.overlay import render_overlay
from iapas.types import Box, Prediction


def main() -> None:
    rng = np.random.default_rng(0)
    for w, h in [(1024, 768), (2400, 1800), (500, 1250)]:
        rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        score = rng.random((h, w)).astype(np.float32)
        boxes = [Box((w * 0.1 * i, h * 0.1, w * 0.1 * i + 80, h * 0.1 + 60), f"dent {i}", 0.5) for i in range(5)]
        pred = Prediction(path="x.png", score_map=score, mask=score > 0.9, boxes=boxes, image_score=1.0,
                          profile="offline", removed_boxes=boxes[:2])
        render_overlay(rgb, pred)
        costs = []
        for _ in range(3):
            t = time.process_time()
            render_overlay(rgb, pred)
            costs.append(time.process_time() - t)
        print(f"overlay {w}x{h}: {min(costs) * 1000:.0f} ms CPU (best of 3), target < 300 ms")


if __name__ == "__main__":
    main()
