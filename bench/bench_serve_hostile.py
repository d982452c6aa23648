"""Hostile clients against `iapas serve` (offline profile): it starts its own server on 127.0.0.1, runs three
bounded phases, stops the server with SIGTERM and prints one line of figures.

    python bench/bench_serve_hostile.py
    python bench/bench_serve_hostile.py --phases big      # the large-pixel phase alone (it is the memory one)

1. slow uploads: 64 clients send the headers of a 1 MB upload (with a valid token: the worst case) and then
   1 byte every 2 s, reconnecting 2 s after each answer, for 30 s, while a probe polls /healthz every second.
   Pass: every probe answered 200 within 1 s.
2. 60 concurrent unauthenticated 20 MB uploads (raw sockets, the body streamed until the server answers).
   Pass: all 401, server RSS growth < 300 MB.
3. 16 concurrent authenticated uploads of a 7071 x 7071 PNG (~150 KB, under --max-pixels 50 M).
   Pass: server RSS growth < 1.5 GB, and back within 300 MB of the start 5 s after the server went idle (a
   request answered 504 may still be in the model worker: its prediction cannot be stopped halfway).

Exit status 0 when every phase run passes, 1 otherwise. Every phase has a bounded count and a time limit.
`--phases` picks phases (slow, unauth, big; default all); `--map-pixels N` is passed to the server (its default
otherwise).
"""
from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench_serve import free_port, rss_mb, wait_ready  # bench/ is on sys.path when run as a script

TOKEN = "bench-hostile-token"
PHASES = ("slow", "unauth", "big")
HOST = "127.0.0.1"


class PeakRss:
    """Samples a process's resident memory every 50 ms in a thread; `peak` is the largest reading."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(0.05)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2)


def upload_headers(port: int, length: int, token: str | None) -> socket.socket:
    """A connection that sent the headers of a multipart upload of `length` bytes (no body yet)."""
    s = socket.create_connection((HOST, port), timeout=10)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall((f"POST /v1/inspect?line=bench HTTP/1.1\r\nHost: {HOST}\r\n{auth}"
               f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {length}\r\n\r\n").encode())
    return s


def status_of(data: bytes) -> int | None:
    return int(data[9:12]) if data.startswith(b"HTTP/1.1 ") and len(data) >= 12 else None


def slow_uploads(url: str, port: int, clients: int, seconds: float) -> tuple[list[float], list[int], Counter]:
    """Phase 1: probe times (s), probe statuses, and how the slow clients' requests were answered."""
    stop_at = time.monotonic() + seconds
    answers: Counter = Counter()
    lock = threading.Lock()

    def client() -> None:
        while time.monotonic() < stop_at:
            try:
                s = upload_headers(port, 1_000_000, TOKEN)
            except OSError:
                time.sleep(2)
                continue
            try:
                s.settimeout(2.0)
                status = None
                while time.monotonic() < stop_at:
                    try:
                        data = s.recv(4096)
                        status = status_of(data) if data else -1  # -1: closed without an answer
                        break
                    except (TimeoutError, socket.timeout):
                        try:
                            s.sendall(b"x")  # one byte every 2 s
                        except OSError:
                            status = -1
                            break
                    except OSError:
                        status = -1
                        break
                if status is not None:
                    with lock:
                        answers[status] += 1
            finally:
                s.close()
            time.sleep(2)  # a client retrying after its answer

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    times: list[float] = []
    codes: list[int] = []
    time.sleep(1.0)
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            try:
                codes.append(http.get(f"{url}/healthz").status_code)
            except httpx.HTTPError:
                codes.append(0)
            times.append(time.monotonic() - t0)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
    for t in threads:
        t.join(10)
    return times, codes, answers


def unauthenticated_uploads(port: int, clients: int, size: int, seconds: float) -> Counter:
    """Phase 2: status of each of `clients` concurrent unauthenticated uploads of `size` bytes."""
    results: Counter = Counter()
    lock = threading.Lock()
    chunk = b"\0" * (1 << 20)
    stop_at = time.monotonic() + seconds

    def client() -> None:
        status = None
        try:
            s = upload_headers(port, size, None)
        except OSError:
            with lock:
                results["connect failed"] += 1
            return
        try:
            s.setblocking(False)
            sent = 0
            data = b""
            while time.monotonic() < stop_at and status is None:
                try:
                    data += s.recv(4096)
                    status = status_of(data) or (-1 if not data else None)
                    if status is not None:
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    status = -1
                    break
                if sent < size:
                    try:
                        sent += s.send(chunk[: min(len(chunk), size - sent)])
                    except BlockingIOError:
                        time.sleep(0.005)
                    except OSError:
                        pass  # the server stopped reading: its answer is on the way
                else:
                    time.sleep(0.01)
        finally:
            s.close()
        with lock:
            results[status if status is not None else "no answer"] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    return results


def large_pixel_uploads(url: str, png: bytes, clients: int, seconds: float) -> Counter:
    """Phase 3: status of each of `clients` concurrent authenticated uploads of a large-pixel PNG."""
    results: Counter = Counter()
    lock = threading.Lock()

    def client(i: int) -> None:
        try:
            res = httpx.post(f"{url}/v1/inspect", params={"line": "bench"}, files={"file": (f"big_{i}.png", png)},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=seconds)
            status: int | str = res.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        with lock:
            results[status] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    return results


def wait_idle(url: str, seconds: float) -> float:
    """Wait (at most `seconds`) until the server has no request queued or being worked on; the seconds waited.

    A request answered 504 may still be in the model worker (a running prediction cannot be stopped), so
    memory is measured once that work is done."""
    t0 = time.monotonic()
    with httpx.Client(timeout=5) as http:
        while time.monotonic() - t0 < seconds:
            try:
                if http.get(f"{url}/readyz").json().get("queue_depth") == 0:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
    return time.monotonic() - t0


def big_png(side: int) -> bytes:
    """A `side` x `side` RGB PNG that compresses to a few hundred KB (a grey field with a few bright squares)."""
    arr = np.full((side, side, 3), 96, np.uint8)
    for k in range(8):
        y, x = (k * 877) % (side - 200), (k * 1291) % (side - 200)
        arr[y:y + 150, x:x + 150] = 240
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slow-clients", type=int, default=64)
    ap.add_argument("--slow-seconds", type=float, default=30.0)
    ap.add_argument("--unauth-clients", type=int, default=60)
    ap.add_argument("--big-clients", type=int, default=16)
    ap.add_argument("--side", type=int, default=7071, help="side of the large-pixel PNG")
    ap.add_argument("--phases", default="slow,unauth,big", help="comma-separated phases to run: slow, unauth, big")
    ap.add_argument("--map-pixels", type=int, default=None, help="the server's --map-pixels (default: its own)")
    args = ap.parse_args()
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if not phases or phases - set(PHASES):
        ap.error(f"--phases takes a comma-separated subset of {', '.join(PHASES)}")

    from iapas.config import build_config
    from iapas.data.synthetic import make_category
    from iapas.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="iapas-bench-hostile-") as tmp:
        root = Path(tmp)
        cat = make_category(root, "brick", n_normal=6, n_test=2, size=(160, 160), seed=3)
        Pipeline(build_config(profile="offline", threads=1)).fit(cat.root / "normal").save(root / "ctx.json")
        png = big_png(args.side)
        port = free_port()
        url = f"http://{HOST}:{port}"
        cmd = [sys.executable, "-m", "iapas.cli.app", "serve", "--context", f"bench={root / 'ctx.json'}",
               "--host", HOST, "--port", str(port), "--token-env", "IAPAS_BENCH_TOKEN"]
        if args.map_pixels is not None:
            cmd += ["--map-pixels", str(args.map_pixels)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "IAPAS_BENCH_TOKEN": TOKEN}
        log = open(root / "server.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        code, stop_s = None, float("nan")
        try:
            try:
                wait_ready(url, proc)
            except SystemExit as exc:
                raise SystemExit(f"server did not start ({exc}):\n{(root / 'server.log').read_text()[-2000:]}") from None
            start_rss = rss_mb(proc.pid)
            load_start = os.getloadavg()[0]
            if "slow" in phases:
                probe_times, probe_codes, slow_answers = slow_uploads(url, port, args.slow_clients, args.slow_seconds)
            if "unauth" in phases:
                before2 = rss_mb(proc.pid)
                with PeakRss(proc.pid) as peak2:
                    unauth = unauthenticated_uploads(port, args.unauth_clients, 20_000_000, 120)
            if "big" in phases:
                before3 = rss_mb(proc.pid)
                with PeakRss(proc.pid) as peak3:
                    big = large_pixel_uploads(url, png, args.big_clients, 120)
                    idle_s = wait_idle(url, 120)
                time.sleep(5)
                after3 = rss_mb(proc.pid)
        finally:
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            stop_s = time.monotonic() - t0
            log.close()
        parts, failed = [], []
        if "slow" in phases:
            ok = bool(probe_times) and all(c == 200 for c in probe_codes) and max(probe_times) < 1.0
            parts.append(f"slow uploads {args.slow_clients}x1B/2s {args.slow_seconds:.0f}s: probes "
                         f"{sum(c == 200 for c in probe_codes)}/{len(probe_codes)} ok, max "
                         f"{max(probe_times or [float('nan')]) * 1000:.0f} ms, slow answers {dict(sorted(slow_answers.items(), key=str))}")
            failed += [] if ok else ["probes"]
        if "unauth" in phases:
            ok = unauth.get(401, 0) == args.unauth_clients and peak2.peak - before2 < 300
            parts.append(f"unauth {args.unauth_clients}x20MB: {dict(sorted(unauth.items(), key=str))}, "
                         f"RSS +{peak2.peak - before2:.0f} MB peak")
            failed += [] if ok else ["unauth"]
        if "big" in phases:
            ok = peak3.peak - before3 < 1500 and after3 - start_rss < 300
            parts.append(f"big {args.big_clients}x{args.side}^2 PNG ({len(png) // 1024} KB): {dict(sorted(big.items(), key=str))}, "
                         f"RSS +{peak3.peak - before3:.0f} MB peak, {after3 - start_rss:+.0f} MB vs start 5 s after the "
                         f"server went idle ({idle_s:.1f} s after the last answer)")
            failed += [] if ok else ["big"]
        failed += [] if code == 0 else ["SIGTERM exit"]
        passed = not failed
        parts.append(f"server start {start_rss:.0f} MB, SIGTERM exit {code} in {stop_s:.1f} s, machine load (1 min) "
                     f"{load_start:.1f} -> {os.getloadavg()[0]:.1f}")
        print(" | ".join(parts) + f" | {'PASS' if passed else 'FAIL (' + ', '.join(failed) + ')'}")
        sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
