"""Slow uploads cannot starve the service: each body has a deadline (408), uploads beyond the admission bound
get a JSON 503 at once, and /healthz and /readyz stay answerable while 70 clients dribble bytes."""
from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from serve_support import fake_context, raw_upload_headers, read_answer
from serve_helpers import start_server

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="no serve extra")]
SLOW_CLIENTS = 70  # above uvicorn's old connection limit (64) and above --max-uploads


def test_probes_answer_and_slow_bodies_time_out(tmp_path: Path) -> None:
    srv = start_server({"tile": fake_context(tmp_path)}, tmp_path / "server.log", "--queue-size", "1",
                       "--body-timeout", "3", "--max-uploads", "16", fake_delay=0.0)
    port = int(srv.url.rsplit(":", 1)[1])
    stop = threading.Event()
    answers: list[tuple[int | None, bytes, float]] = []
    lock = threading.Lock()

    def dribble() -> None:
        start = time.monotonic()
        s = raw_upload_headers(port, 1_000_000)
        try:
            s.settimeout(0.05)
            while not stop.is_set():
                try:
                    s.sendall(b"x")
                except OSError:
                    break
                status, raw = read_answer(s, 0.5)
                if status is not None:
                    with lock:
                        answers.append((status, raw, time.monotonic() - start))
                    return
        finally:
            s.close()

    threads = [threading.Thread(target=dribble, daemon=True) for _ in range(SLOW_CLIENTS)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        probe_times = []
        for _ in range(4):
            for path in ("/healthz", "/readyz"):
                t0 = time.monotonic()
                res = httpx.get(f"{srv.url}{path}", timeout=5)
                probe_times.append(time.monotonic() - t0)
                assert res.status_code == 200, (path, res.status_code, res.text[:200])
            time.sleep(0.5)
        assert max(probe_times) < 1.0, probe_times
        for t in threads:
            t.join(timeout=15)
    finally:
        stop.set()
        srv.stop(timeout=60)
    statuses = [a[0] for a in answers]
    assert statuses.count(408) >= 1 and statuses.count(503) >= 1, statuses
    assert set(statuses) <= {408, 503}, statuses
    for status, raw, seconds in answers:
        body = json.loads(raw.split(b"\r\n\r\n", 1)[1] or b"{}")
        assert set(body) >= {"error", "kind"}, raw[:300]
        if status == 408:
            assert body["kind"] == "body_timeout" and seconds < 3 + 2.5
