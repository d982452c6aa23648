"""Refusals that protect the server: the optional bearer token (401 missing / 403 wrong, compared in constant
time) and the JSON error shape every refusal shares; `iapas.serve.guard` applies them before a body is read."""
from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MULTIPART_SLACK = 64 * 1024  # form boundaries and part headers around the file itself


class ApiError(Exception):
    """An error answer: HTTP status, a short machine-readable kind, a message for people, extra headers."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "kind": self.kind, **self.extra}


def check_token(expected: str | None, authorization: str | None) -> None:
    """Raise 401/403 unless `authorization` is `Bearer <expected>` (no token configured: allow)."""
    if expected is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "unauthorized", "this server needs 'Authorization: Bearer <token>'",
                       {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode("utf-8"), expected.encode("utf-8")):
        raise ApiError(403, "forbidden", "the bearer token is not valid for this server")


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None,
                    close: bool = True) -> None:
    """A complete JSON answer; `close` ends the connection (a refused upload's unread body is never read)."""
    data = json.dumps(body).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        raw.append((b"connection", b"close"))
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
