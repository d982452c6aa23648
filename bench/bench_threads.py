"""Throughput of the offline profile idle and beside two busy loops, per thread setting.

    python bench/bench_threads.py [--images N] [--size PX] [--threads auto,1,2] [--busy 2] [--seconds-max 300]

Each setting runs in a fresh subprocess (thread pools are fixed at the first parallel call, and the
OpenMP wait policy at import), fits on 5 synthetic normal textures and times Stage 2 over N synthetic
test images, first on the idle machine, then while this bench runs `--busy` pure-Python busy loops in
their own processes (started before and stopped after each timed run, and killed at --seconds-max at
the latest). Prints images/s per setting and the busy/idle ratio: the target is >= 40% at the default.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = r"""
import json, sys, time
from iapas.threads import passive_wait
passive_wait()  # as the CLI does, before torch loads
from iapas.config import build_config
from iapas.pipeline import Pipeline
from iapas.threads import current_threads
root, n, threads, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cfg = build_config(profile="offline", kind=kind, threads=None if threads == "auto" else int(threads))
pipe = Pipeline(cfg)
ctx = pipe.fit(root + "/normal")
from pathlib import Path
tests = sorted(Path(root, "test").glob("*.png"))[:n]
pipe.predict_one(tests[0], ctx)  # warm-up
t0 = time.perf_counter()
for p in tests:
    pipe.predict_one(p, ctx)
dt = time.perf_counter() - t0
print(json.dumps({"images_per_second": len(tests) / dt, "threads": current_threads()}))
"""


def busy_loop(stop_at: float) -> None:
    """Burn one core until `stop_at` (a wall-clock bound, so a crashed bench never leaves it running)."""
    x = 0
    while time.time() < stop_at:
        x = (x * 1103515245 + 12345) % 2147483648


def timed_run(root: Path, n: int, threads: str, kind: str) -> dict:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    res = subprocess.run([sys.executable, "-c", WORKER, str(root), str(n), threads, kind], capture_output=True,
                         text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"worker failed ({threads}): {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--size", type=int, default=320, help="side of the synthetic test images")
    ap.add_argument("--threads", default="auto,1,2", help="comma-separated settings; auto = the default")
    ap.add_argument("--busy", type=int, default=2, help="background busy loops during the loaded runs")
    ap.add_argument("--kind", default="texture", choices=("object", "texture"))
    ap.add_argument("--seconds-max", type=float, default=300.0, help="hard bound on each busy loop's life")
    args = ap.parse_args()
    from iapas.data.synthetic import make_category

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cat = make_category(tmp, "gravel", n_normal=5, n_test=args.images, size=(args.size, args.size), seed=1)
        for setting in [t.strip() for t in args.threads.split(",") if t.strip()]:
            idle = timed_run(cat.root, args.images, setting, args.kind)
            stop_at = time.time() + args.seconds_max
            loops = [mp.Process(target=busy_loop, args=(stop_at,), daemon=True) for _ in range(args.busy)]
            for p in loops:
                p.start()
            try:
                loaded = timed_run(cat.root, args.images, setting, args.kind)
            finally:
                for p in loops:
                    p.terminate()
                for p in loops:
                    p.join(timeout=10)
            ratio = loaded["images_per_second"] / idle["images_per_second"]
            rows.append((setting, idle, loaded, ratio))
            print(f"threads={setting:>4} {idle['threads']}: idle {idle['images_per_second']:.2f} img/s, "
                  f"with {args.busy} busy loops {loaded['images_per_second']:.2f} img/s ({100 * ratio:.0f}% of idle)",
                  flush=True)
    print("\n| threads | idle images/s | busy images/s | busy / idle |\n|---|---|---|---|")
    for setting, idle, loaded, ratio in rows:
        print(f"| {setting} | {idle['images_per_second']:.2f} | {loaded['images_per_second']:.2f} | {100 * ratio:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
