"""Shared pieces of the service tests: an in-process app on the tiny MeanDiff profile, a fitted context for a
real `iapas serve` subprocess, and raw loopback sockets that behave like hostile clients."""
from __future__ import annotations

import io
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers

from fake_profile import MeanDiffProfile, mean_diff, use_mean_diff  # noqa: E402
from iapas.config import build_config  # noqa: E402
from iapas.io.images import LoadedImage  # noqa: E402

TOKEN = "s3cret-token"


def fake_context(folder: Path) -> Path:
    """A context of the MeanDiff profile that tests/fake_cli.py serves (fitted on three grey images)."""
    path = folder / "ctx_fake.json"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        normal = [LoadedImage(path=f"n{i}.png", rgb=np.full((32, 32, 3), 60 + 10 * i, np.uint8), original_size=(32, 32))
                  for i in range(3)]
        mean_diff(build_config(profile="offline"), "offline").fit(normal).save(path)
    return path


def png_bytes(width: int = 48, height: int = 40, grey: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), grey, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@contextmanager
def app_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Iterator[Any]:
    """A TestClient on the real app (Guard, FastAPI, workers) serving line `tile` with the MeanDiff profile."""
    from fastapi.testclient import TestClient

    from iapas.serve.app import create_app
    from iapas.serve.lines import load_lines
    from iapas.serve.settings import ServeSettings
    from iapas.serve.workers import ModelWorkers

    use_mean_diff(monkeypatch)
    lines = load_lines([f"tile={fake_context(tmp_path)}"])
    workers = ModelWorkers(lines, [None], settings.pop("queue_size", 4))
    workers.start()
    app = create_app(lines, workers, ServeSettings(**settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def raw_upload_headers(port: int, length: int, token: str | None = None, path: str = "/v1/inspect?line=tile") -> socket.socket:
    """A connection that sent the headers of a multipart upload of `length` bytes and nothing of its body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    s.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
               f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {length}\r\n\r\n").encode())
    return s


def read_answer(s: socket.socket, timeout: float) -> tuple[int | None, bytes]:
    """(status, raw answer) of what the server sent back within `timeout` (None: nothing came)."""
    s.settimeout(timeout)
    data = b""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end and b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.settimeout(0.5)
        try:
            data += s.recv(65536)
        except OSError:
            pass
    except (TimeoutError, socket.timeout, OSError):
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    return int(data[9:12]), data
