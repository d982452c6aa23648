"""The bearer token is checked from the headers before any body byte is read: an unauthenticated upload
gets 401 at once, even while its body has not arrived or is not valid multipart."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from serve_support import TOKEN, fake_context, raw_upload_headers, read_answer
from serve_helpers import start_server

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="no serve extra")]


def test_unauthenticated_upload_refused_before_its_body(tmp_path: Path) -> None:
    srv = start_server({"tile": fake_context(tmp_path)}, tmp_path / "server.log", "--token-env", "TEST_TOKEN",
                       fake_delay=0.0, env={"TEST_TOKEN": TOKEN})
    port = int(srv.url.rsplit(":", 1)[1])
    try:
        for token in (None, "wrong-token"):
            s = raw_upload_headers(port, 19_900_000, token=token)  # a 19.9 MB upload announced, nothing sent
            t0 = time.monotonic()
            status, raw = read_answer(s, 5)
            s.close()
            assert status == (401 if token is None else 403), raw[:300]
            assert time.monotonic() - t0 < 2
            assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["kind"] in ("unauthorized", "forbidden")
        s = raw_upload_headers(port, 20, token=None)  # not multipart at all: still 401, not a parser's 400
        s.sendall(b"0123456789abcdefghij")
        status, raw = read_answer(s, 5)
        s.close()
        assert status == 401, raw[:300]
    finally:
        assert srv.stop(timeout=60) == 0
