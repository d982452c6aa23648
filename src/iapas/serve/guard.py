"""The server's outer ASGI layer: everything that must hold before a request body is read.

Why here and not in the routes: FastAPI reads and parses a multipart body before any route dependency runs,
so a token checked there comes after the server has buffered whatever a stranger sent, and uvicorn's own
connection limit answers every client (health probes included) with a plain-text 503 once slow uploads fill
it. This layer answers the probes itself (they never wait behind uploads), checks the bearer token from the
headers, bounds how many bodies are read at once, and gives each body a deadline, all before FastAPI sees
the request. Decoding is bounded separately, by `PixelBudget`.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from iapas.serve.limits import MULTIPART_SLACK, ApiError, Receive, Scope, Send, check_token, send_json
from iapas.serve.settings import ServeSettings

PROBES = ("/healthz", "/readyz")
TRIM_PIXELS = 4_000_000  # after handling an image this large, freed memory goes back to the OS
KNOWN_ROUTES = ("/v1/inspect", "/v1/lines", "/metrics")  # metric labels of refused requests (others: "other")


def needs_token(path: str) -> bool:
    """The API proper and the metrics; the page, the probes and the API documentation are public."""
    return path == "/metrics" or path == "/v1" or path.startswith("/v1/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class Guard:
    """ASGI middleware in front of the FastAPI app (see the module docstring).

    Args:
        app: the FastAPI application.
        settings: the server's limits (token, upload size, body deadline, concurrent uploads).
        readiness: () -> (ready, queue depth), for /readyz.
        on_error: called with the error kind of every refusal, for the metrics.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], settings: ServeSettings,
                 readiness: Callable[[], tuple[bool, int]], on_error: Callable[[str], None]) -> None:
        self.app = app
        self.settings = settings
        self.readiness = readiness
        self.on_error = on_error
        self.limit = settings.max_upload_bytes + MULTIPART_SLACK
        self.reading = 0  # bodies being received right now (one event loop: no lock needed)

    async def refuse(self, scope: Scope, send: Send, error: ApiError) -> None:
        self.on_error(error.kind)
        scope.setdefault("iapas", {})["error"] = error.kind
        await send_json(send, error.status, error.body(), error.headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path in PROBES and method in ("GET", "HEAD"):
            await self.probe(scope, send)
            return
        if path in KNOWN_ROUTES:
            scope["route"] = SimpleNamespace(path=path)  # the access log's label, also for refusals
        if needs_token(path):
            try:
                check_token(self.settings.token, _header(scope, b"authorization"))
            except ApiError as exc:
                await self.refuse(scope, send, exc)
                return
        if method not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            await self.refuse(scope, send, self.too_large())
            return
        if self.reading >= self.settings.max_uploads:
            await self.refuse(scope, send, ApiError(
                503, "busy", f"{self.reading} uploads are already arriving; retry shortly", {"Retry-After": "2"}))
            return
        self.reading += 1
        try:
            body = await self.read_body(scope, receive, send)
        finally:
            self.reading -= 1
        if body is None:
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def probe(self, scope: Scope, send: Send) -> None:
        """/healthz: the process answers; /readyz: models loaded, workers alive, not shutting down."""
        scope["route"] = SimpleNamespace(path=scope["path"])
        if scope["path"] == "/healthz":
            await send_json(send, 200, {"status": "ok"}, close=False)
            return
        ready, depth = self.readiness()
        await send_json(send, 200 if ready else 503, {"status": "ready" if ready else "not ready", "queue_depth": depth},
                        close=False)

    def too_large(self) -> ApiError:
        mb = self.settings.max_upload_bytes / 1e6
        return ApiError(413, "too_large", f"upload is larger than this server's limit of {mb:g} MB (--max-upload-mb)")

    async def read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after answering 413 (too large) / 408 (not complete by the deadline)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                message = await asyncio.wait_for(receive(), timeout=remaining)
            except asyncio.TimeoutError:
                await self.refuse(scope, send, ApiError(
                    408, "body_timeout", f"the upload did not arrive within {self.settings.body_timeout_s:g} s "
                    "(--body-timeout)"))
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self.refuse(scope, send, self.too_large())
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


class PixelBudget:
    """How many image pixels may be decoding at once: a request waits for its share (its header's width x
    height) before decoding, so concurrent uploads of huge images cannot stack their decode buffers.

    One image larger than the whole budget still decodes, alone. Used from the event loop only.
    """

    def __init__(self, pixels: int) -> None:
        self.total = max(1, int(pixels))
        self.used = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, pixels: int, timeout: float) -> AsyncIterator[None]:
        """Hold `pixels` of the budget for the block; raise ApiError 503 when not granted within `timeout`."""
        need = min(max(0, int(pixels)), self.total)
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.used + need <= self.total),
                                       timeout=max(timeout, 0.001))
            except asyncio.TimeoutError:
                raise ApiError(503, "busy_decoding", "other large images are being decoded; retry shortly",
                               {"Retry-After": "2"}) from None
            self.used += need
        try:
            yield
        finally:
            async with self._changed:
                self.used -= need
                self._changed.notify_all()


def _libc_trim() -> Callable[[], Any] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc.malloc_trim if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_TRIM = _libc_trim()


def give_memory_back() -> None:
    """Return freed heap pages to the OS (glibc keeps them per thread arena otherwise, so the RSS of a server
    that decoded a few large images would stay high long after)."""
    if _TRIM is not None:
        _TRIM(0)
