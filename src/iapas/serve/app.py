"""The FastAPI application of `iapas serve`: routes, error answers, metrics and the access log.

Built by `create_app(lines, workers, settings)` after the models are loaded, so a started server is a
ready server; uvicorn runs it (see iapas.cli.serve).
"""
# No `from __future__ import annotations` here: FastAPI reads the route signatures, whose types are imported
# inside the route-registration functions (FastAPI is optional, and loads only when a server starts).

import asyncio
import math
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Literal, Optional

from iapas.errors import InputError
from iapas.serve.accesslog import access, event
from iapas.serve.answers import TooManyPixels, answer, decode_upload, pixel_count, upload_name
from iapas.serve.docs import add_offline_docs
from iapas.serve.guard import TRIM_PIXELS, Guard, PixelBudget, give_memory_back
from iapas.serve.limits import ApiError, Receive, Scope, Send, check_token
from iapas.serve.lines import Line
from iapas.serve.metrics import Metrics
from iapas.serve.page import page_html
from iapas.serve.settings import ServeSettings
from iapas.serve.workers import ModelWorkers, QueueFull

LOGGED_CHARS = 256  # of a request's path and query in the access log (a client controls both)


def short(text: str, limit: int = 64) -> str:
    """A client-supplied value as it may appear in an answer or a log line: cut, with its full length said."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


API_DESCRIPTION = """Zero-shot defect inspection of single images against product lines whose contexts were fitted
beforehand with `iapas prompts`. The verdict uses the same rule as `iapas run` (iapas.verdict.decide)."""


class AccessLog:
    """ASGI middleware: one JSON log line and the request metrics per request, and an X-Request-ID."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        status = {"code": 500}
        scope["iapas"] = {}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "other"
            self.metrics.observe_request(route, scope["method"], status["code"], seconds)
            client = scope.get("client") or ("", 0)
            access({"request_id": request_id, "method": scope["method"], "path": short(scope["path"], LOGGED_CHARS),
                    "query": short(scope.get("query_string", b"").decode("latin-1"), LOGGED_CHARS), "status": status["code"],
                    "duration_ms": round(seconds * 1000, 2), "client": client[0], **scope.get("iapas", {})})


def _retry_after(workers: ModelWorkers, mean_inference_s: float) -> int:
    """Seconds until the queue has likely drained one place: depth x mean model time / workers."""
    return max(1, math.ceil(workers.depth() * mean_inference_s / max(1, len(workers.devices))))


def create_app(lines: dict[str, Line], workers: ModelWorkers, settings: ServeSettings, metrics: Metrics | None = None) -> Any:
    """The ASGI application: FastAPI inside the guard (probes, token, body limits: `iapas.serve.guard`) and the
    access log.

    Args:
        lines: the product lines served, by name (their contexts loaded).
        workers: the started model workers.
        settings: the service's limits, token and timeouts.
        metrics: the Prometheus metrics (None: a new set).

    Returns:
        The ASGI application uvicorn runs.
    """
    from fastapi import Depends, FastAPI, Request  # optional dependency (iapas[serve])

    metrics = metrics or Metrics()
    metrics.queue_depth.set_function(workers.depth)
    api = FastAPI(title="iapas", description=API_DESCRIPTION, version=_version(),
                  lifespan=_lifespan(lines, workers, settings),
                  docs_url=None, redoc_url=None)  # /docs is served offline below (serve/docs.py)
    add_offline_docs(api, "iapas")

    def authorised(request: Request) -> None:
        """Runs before the parameters are validated, so a stranger learns nothing about the API's inputs."""
        check_token(settings.token, request.headers.get("authorization"))

    guarded = [Depends(authorised)]

    _add_error_handlers(api, metrics)
    _add_inspect_route(api, lines, workers, settings, metrics, guarded)
    _add_info_routes(api, lines, workers, settings, metrics, guarded)
    guarded_app = Guard(api, settings, readiness=lambda: (workers.ready, workers.depth()), on_error=metrics.error)
    return AccessLog(guarded_app, metrics)


def _lifespan(lines: dict[str, Line], workers: ModelWorkers, settings: ServeSettings) -> Any:
    """The app's lifespan: log the start, and on shutdown let the workers finish what they hold."""
    from starlette.concurrency import run_in_threadpool  # optional dependency (iapas[serve])

    @asynccontextmanager
    async def lifespan(_: Any):  # type: ignore[no-untyped-def]
        event("serving", lines={n: line.context_id for n, line in lines.items()}, workers=len(workers.devices),
              queue_size=settings.queue_size, token=settings.token is not None)
        yield
        event("shutting down: finishing queued requests")
        await run_in_threadpool(workers.close, min(settings.drain_s, 5.0))
        event("stopped")

    return lifespan


def _add_error_handlers(api: Any, metrics: Metrics) -> None:
    """Every error answer in the documented JSON shape, counted by kind."""
    from fastapi import Request  # optional dependency (iapas[serve])
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @api.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        metrics.error(exc.kind)
        request.scope.setdefault("iapas", {})["error"] = exc.kind
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """Missing or malformed parameters, in the documented shape (the values themselves are not echoed)."""
        problems = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ())), e.get("msg", "invalid")) for e in exc.errors()]
        return await api_error(request, ApiError(422, "invalid_request", short("; ".join(problems), 300)))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        return await api_error(request, ApiError(exc.status_code, kind, short(str(exc.detail), 200),
                                                 dict(exc.headers or {})))

    @api.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return await api_error(request, ApiError(500, "internal", f"internal error ({type(exc).__name__})"))


def _add_inspect_route(api: Any, lines: dict[str, Line], workers: ModelWorkers, settings: ServeSettings,
                       metrics: Metrics, guarded: list[Any]) -> None:
    """POST /v1/inspect: one image in, its verdict (and optionally mask and overlay) out."""
    from fastapi import File, Query, Request, UploadFile  # optional dependency (iapas[serve])
    from starlette.concurrency import run_in_threadpool

    budget = PixelBudget(settings.pixel_budget)
    inspect_decoded = _inspect_decoded(lines, workers, settings, metrics)
    @api.post("/v1/inspect", summary="Inspect one image of a line", dependencies=guarded,
              responses={401: {"description": "token missing"}, 403: {"description": "token wrong"},
                         404: {"description": "unknown line"}, 413: {"description": "upload or pixel count too large"},
                         422: {"description": "not a usable image (the CLI's reason)"},
                         503: {"description": "queue full (see Retry-After)"}, 504: {"description": "timed out"}})
    async def inspect(
        request: Request,
        file: UploadFile = File(..., description="the image (PNG, JPEG, BMP, TIFF, WebP, PNM, GIF)"),
        line: Optional[str] = Query(None, description="product line name, as given to --context NAME=...; "
                                    "may be left out when the server serves one line"),
        mask: Optional[Literal["png", "rle"]] = Query(None, description="add the defect mask as PNG or COCO RLE"),
        overlay: bool = Query(False, description="add the overlay picture (PNG, base64)"),
    ) -> dict[str, Any]:
        start = time.perf_counter()
        if line is None:
            if len(lines) != 1:
                raise ApiError(422, "line_required", f"give ?line=NAME; this server has: {', '.join(lines)}")
            line = next(iter(lines))
        if line not in lines:
            raise ApiError(404, "unknown_line", f"no line {short(line)!r}; this server has: {', '.join(lines)}")
        request.scope.setdefault("iapas", {})["line"] = line
        data = await file.read()
        await file.close()
        name = upload_name(file.filename)
        size = pixel_count(data)
        pixels = size[0] * size[1] if size else 0
        # the budget covers the decoded pixels' whole life in this request (decode, queue, model, answer),
        # so large images wait for each other instead of piling up decoded in the queue
        remaining = settings.timeout_s - (time.perf_counter() - start)
        try:
            async with budget.hold(pixels if pixels <= settings.max_pixels else 0, remaining):
                try:
                    image = await run_in_threadpool(decode_upload, data, name, settings.max_pixels, settings.map_pixels)
                except TooManyPixels as exc:
                    raise ApiError(413, "too_many_pixels", str(exc)) from None
                except InputError as exc:
                    raise ApiError(422, "bad_image", exc.reason, file=name) from None
                finally:
                    del data
                return await inspect_decoded(request, line, image, mask, overlay, start)
        finally:
            if pixels >= TRIM_PIXELS:
                await run_in_threadpool(give_memory_back)


def _inspect_decoded(lines: dict[str, Line], workers: ModelWorkers, settings: ServeSettings, metrics: Metrics) -> Any:
    """The second half of /v1/inspect: a decoded image through the queue to its answer."""
    from fastapi import Request  # optional dependency (iapas[serve])
    from starlette.concurrency import run_in_threadpool

    stats = {"mean_inference_s": 0.5}

    async def inspect_decoded(request: Request, line: str, image: Any, mask: Optional[str], overlay: bool,
                              start: float) -> dict[str, Any]:
        """Queue one decoded image for a model worker and build its answer (the caller holds its pixels)."""
        try:
            future = workers.submit(line, image)
        except QueueFull as exc:
            wait = _retry_after(workers, stats["mean_inference_s"])
            raise ApiError(503, "queue_full", f"busy ({exc}); retry in {wait} s", {"Retry-After": str(wait)}) from None
        remaining = settings.timeout_s - (time.perf_counter() - start)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), timeout=max(remaining, 0.001))
        except asyncio.TimeoutError:
            future.cancel()  # still queued: no worker will spend time on it
            raise ApiError(504, "timeout", f"no answer within {settings.timeout_s:g} s (--timeout)") from None
        except Exception as exc:  # noqa: BLE001 - the model failed on this image: say why, keep serving
            raise ApiError(500, "internal", f"processing failed ({type(exc).__name__}: {exc})") from None
        stats["mean_inference_s"] = 0.8 * stats["mean_inference_s"] + 0.2 * result.inference_s
        metrics.inference.labels(line).observe(result.inference_s)
        metrics.verdicts.labels(line, result.verdict.label).inc()
        request.scope.setdefault("iapas", {})["verdict"] = result.verdict.label
        return await run_in_threadpool(answer, lines[line], image, result, mask, overlay, time.perf_counter() - start)

    return inspect_decoded


def _add_info_routes(api: Any, lines: dict[str, Line], workers: ModelWorkers, settings: ServeSettings,
                     metrics: Metrics, guarded: list[Any]) -> None:
    """GET /v1/lines, /healthz, /readyz, /metrics and the page at /."""
    from fastapi.responses import HTMLResponse, JSONResponse, Response  # optional dependency (iapas[serve])

    @api.get("/v1/lines", summary="The loaded product lines and their provenance", dependencies=guarded)
    async def list_lines() -> dict[str, Any]:
        return {"lines": [line.provenance() for line in lines.values()]}

    @api.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", summary="Readiness: models loaded, workers running, not shutting down")
    async def readyz() -> JSONResponse:
        ready = workers.ready
        return JSONResponse({"status": "ready" if ready else "not ready", "queue_depth": workers.depth()},
                            status_code=200 if ready else 503)

    @api.get("/metrics", summary="Prometheus metrics", dependencies=guarded)
    async def prometheus() -> Response:
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        # with a token, the line names are the API's to give (the page asks /v1/lines once a token is typed)
        shown = list(lines) if settings.token is None else []
        return HTMLResponse(page_html(shown, needs_token=settings.token is not None),
                            headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                     "style-src 'unsafe-inline'; script-src 'unsafe-inline'"})


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("iapas")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "dev"
