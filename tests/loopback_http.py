"""A throwaway HTTP server on 127.0.0.1 (free port) in a thread, for tests that talk to a fake LLM server.

Subclasses define the request handler (what the fake answers and records); this class owns the
plumbing: bind, serve in a daemon thread, shut down and close on exit.
"""
from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A handler that logs nothing and answers JSON in one call."""

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class LoopbackServer:
    """`with Sub(...) as srv:` serves `handler` on 127.0.0.1; `srv.url` is its base URL plus `suffix`."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler], suffix: str = "") -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{suffix}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
