"""SIGTERM stops the service within its drain period (`--drain-seconds`, default under Kubernetes' 30 s grace
period) even while slow clients hold connections open."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from serve_support import fake_context, raw_upload_headers
from serve_helpers import start_server

pytestmark = pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="no serve extra")


def test_default_drain_is_under_30_seconds() -> None:
    import re

    from typer.testing import CliRunner

    from cli_apps import command_app
    from iapas.cli import serve as serve_cli
    from iapas.serve.settings import ServeSettings

    assert ServeSettings().drain_s < 30
    text = CliRunner().invoke(command_app(serve_cli), ["serve", "--help"], env={"COLUMNS": "300"}).output
    default = re.search(r"--drain-seconds.*?\[default: ([0-9.]+)\]", text, re.S)
    assert default and float(default.group(1)) < 30


@pytest.mark.slow
def test_sigterm_with_slow_clients_stops_within_the_drain_period(tmp_path: Path) -> None:
    srv = start_server({"tile": fake_context(tmp_path)}, tmp_path / "server.log", "--body-timeout", "120",
                       "--drain-seconds", "3", fake_delay=0.0)
    port = int(srv.url.rsplit(":", 1)[1])
    sockets = [raw_upload_headers(port, 1_000_000) for _ in range(6)]
    try:
        for s in sockets:
            s.sendall(b"x" * 10)  # bodies under way, far from complete
        time.sleep(0.5)
        t0 = time.monotonic()
        code = srv.stop(timeout=60)
        took = time.monotonic() - t0
    finally:
        for s in sockets:
            s.close()
    assert code == 0, srv.log_text()[-2000:]
    assert took < 3 + 4, took
