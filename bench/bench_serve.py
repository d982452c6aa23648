"""Load test of `iapas serve` (offline profile): it starts the server itself, sends a bounded number of
concurrent requests, and stops by itself.

    python bench/bench_serve.py                      # 200 requests from 8 clients
    python bench/bench_serve.py --requests 400 --clients 16 --size 256

Prints throughput, p50/p95/p99 latency, the number of errors (0 expected) and the server's resident memory
after warm-up and after the run (growth must stay under 10%). Everything runs on 127.0.0.1; the synthetic
images (scikit-image brick texture with drawn defects) live in a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

DEADLINE_S = 1800.0  # the whole load phase stops by itself after this, whatever happens


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server not ready in time")


def load(url: str, images: list[bytes], n_requests: int, n_clients: int) -> tuple[list[float], list[str], float]:
    """n_requests spread over n_clients threads; returns latencies (s), error descriptions, wall time."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(n_requests))
    stop_at = time.monotonic() + DEADLINE_S

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while time.monotonic() < stop_at:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                data = images[i % len(images)]
                t = time.perf_counter()
                try:
                    res = http.post(f"{url}/v1/inspect", params={"line": "bench"}, files={"file": (f"img_{i}.png", data)})
                    ok = res.status_code == 200 and res.json().get("verdict") in ("defect", "ok")
                    problem = None if ok else f"HTTP {res.status_code}: {res.text[:120]}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                with lock:
                    latencies.append(time.perf_counter() - t)
                    if problem:
                        errors.append(problem)

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--size", type=int, default=160, help="side of the square test images in pixels")
    ap.add_argument("--warmup", type=int, default=16, help="requests sent before the first memory reading")
    args = ap.parse_args()

    from iapas.config import build_config
    from iapas.data.synthetic import make_category
    from iapas.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="iapas-bench-serve-") as tmp:
        root = Path(tmp)
        cat = make_category(root, "brick", n_normal=10, n_test=40, size=(args.size, args.size), seed=3)
        Pipeline(build_config(profile="offline")).fit(cat.root / "normal").save(root / "ctx.json")
        images = [p.read_bytes() for p in cat.test]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "iapas.cli.app", "serve", "--context", f"bench={root / 'ctx.json'}",
               "--host", "127.0.0.1", "--port", str(port), "--queue-size", str(max(8, args.clients)), "--timeout", "300"]
        log = open(root / "server.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        try:
            wait_ready(url, proc)
            _, warm_errors, _ = load(url, images, args.warmup, min(args.clients, args.warmup))
            rss_before = rss_mb(proc.pid)
            latencies, errors, wall = load(url, images, args.requests, args.clients)
            rss_after = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
            log.close()
        ms = np.array(latencies) * 1000.0
        growth = (rss_after - rss_before) / rss_before * 100.0
        print(f"iapas serve, offline profile, {args.size}x{args.size} PNG uploads, {len(cat.test)} distinct images")
        print(f"requests: {len(latencies)} from {args.clients} concurrent clients in {wall:.1f} s "
              f"(+{args.warmup} warm-up, {len(warm_errors)} warm-up errors)")
        print(f"throughput: {len(latencies) / wall:.2f} requests/s")
        print(f"latency ms: p50 {np.percentile(ms, 50):.0f}  p95 {np.percentile(ms, 95):.0f}  p99 {np.percentile(ms, 99):.0f}  "
              f"max {ms.max():.0f}")
        print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
        print(f"server RSS: {rss_before:.0f} MB after warm-up, {rss_after:.0f} MB after the run "
              f"({growth:+.1f}%, limit +10%: {'PASS' if growth < 10 else 'FAIL'})")
        print(f"server exit status after SIGTERM: {code}")
        if errors or growth >= 10 or code != 0:
            sys.exit(1)


if __name__ == "__main__":
    main()
