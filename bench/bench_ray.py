"""The same images through `iapas segment` with the local engine and with `--engine ray` on this machine.

    python bench/bench_ray.py                    # 200 images, 160x160, Ray with one actor per CPU
    python bench/bench_ray.py --images 400 --ray-actors 2

Prints both throughputs, the fixed cost of each engine (a 2-image run: process start, model loading and,
for Ray, starting a local Ray instance and its actors) and the steady rate after it, and checks that the
two output folders hold the same files. On one machine Ray adds its start-up cost and runs one process
per CPU with one torch thread each, where the local engine runs one image at a time on all cores through
torch's threads; which is faster depends on the image size and on other load. Ray's point is the path to
many machines (docs/deploy.md). Each Ray actor reserves one CPU and runs with one thread; float sums inside a
convolution depend on the thread count, so score maps can differ from a multi-threaded local run in the last bits:
the bench then repeats the local run with `--threads 1` and requires byte-identical files.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from iapas.io.scoremaps import load_score_map


def segment(ctx: Path, images: list[Path], out: Path, *extra: str, env: dict[str, str] | None = None) -> float:
    """Wall time of one `iapas segment` run (a fresh process, as a user would start it)."""
    cmd = [sys.executable, "-m", "iapas.cli.app", "segment", "--context", str(ctx), "--images", *map(str, images),
           "--out", str(out), *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall


def steady(n: int, wall: float, wall_2: float) -> str:
    """Images/s once started: the full run minus the 2-image run (n/a when timing noise hides it)."""
    rest = wall - wall_2
    return f"{(n - 2) / rest:.2f} images/s" if rest > 0.05 * wall else "n/a (start-up dominates; use more --images)"


STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d UTC")  # the minute report.html was written


def same_file(a: Path, b: Path) -> bool:
    if a.suffix == ".html":
        return STAMP.sub(b"", a.read_bytes()) == STAMP.sub(b"", b.read_bytes())
    return filecmp.cmp(a, b, shallow=False)


def compare(a: Path, b: Path) -> tuple[int, list[str], float]:
    """(files compared, names that differ, largest score-map difference), over every file under the folders."""
    def listing(folder: Path) -> list[str]:
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))

    names = listing(a)
    assert names == listing(b), "different file lists"
    differ = [n for n in names if not same_file(a / n, b / n)]
    worst = max((float(np.abs(load_score_map(a / n) - load_score_map(b / n)).max()) for n in names if n.endswith((".npy", ".npz"))),
                default=0.0)
    return len(names), differ, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--ray-actors", type=int, default=None, help="default: one per CPU")
    args = ap.parse_args()

    from iapas.config import build_config
    from iapas.data.synthetic import make_category
    from iapas.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="iapas-bench-ray-") as tmp:
        root = Path(tmp)
        cat = make_category(root, "brick", n_normal=10, n_test=args.images, size=(args.size, args.size), seed=5)
        ctx = root / "ctx.json"
        Pipeline(build_config(profile="offline")).fit(cat.root / "normal").save(ctx)
        ray_flags = ["--engine", "ray", *(["--ray-actors", str(args.ray_actors)] if args.ray_actors else [])]
        n = len(cat.test)

        t_local = segment(ctx, cat.test, root / "local")
        t_ray = segment(ctx, cat.test, root / "ray", *ray_flags)
        t_local_2 = segment(ctx, cat.test[:2], root / "local_2")
        t_ray_2 = segment(ctx, cat.test[:2], root / "ray_2", *ray_flags)

        actors = args.ray_actors or os.cpu_count()
        print(f"iapas segment, offline profile, {n} synthetic {args.size}x{args.size} images, {os.cpu_count()} CPUs; "
              f"Ray: local instance, {actors} actor(s) x 1 CPU")
        print(f"local engine: {t_local:6.1f} s wall = {n / t_local:5.2f} images/s "
              f"(fixed cost {t_local_2:.1f} s; steady {steady(n, t_local, t_local_2)})")
        print(f"ray engine:   {t_ray:6.1f} s wall = {n / t_ray:5.2f} images/s "
              f"(fixed cost {t_ray_2:.1f} s; steady {steady(n, t_ray, t_ray_2)})")
        print(f"Ray on one machine: {t_ray / t_local:.2f}x the local wall time "
              f"({t_ray - t_local:+.1f} s, of which {t_ray_2 - t_local_2:+.1f} s is start-up)")

        count, differ, worst = compare(root / "local", root / "ray")
        maps = [d for d in differ if d.endswith((".npy", ".npz"))]
        others = [d for d in differ if not d.endswith((".npy", ".npz"))]
        print(f"outputs, local (all threads) vs ray: {count - len(differ)}/{count} files byte-identical; "
              f"score maps differing: {len(maps)} (largest difference {worst:.2e}); other files differing: {len(others)}")
        identical = not differ
        if differ:
            threads = segment(ctx, cat.test, root / "local_1thread", "--threads", "1")
            count, differ, worst = compare(root / "local_1thread", root / "ray")
            identical = not differ
            print(f"outputs, local with --threads 1 (as each Ray actor; {threads:.1f} s) vs ray: "
                  f"{count - len(differ)}/{count} files byte-identical")
        print(f"identical outputs: {'yes' if identical else 'NO: ' + ', '.join(differ[:5])}")
        if not identical:
            sys.exit(1)


if __name__ == "__main__":
    main()
