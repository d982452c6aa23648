"""`iapas serve`: the HTTP API and browser page for inspection stations (pip install 'iapas[serve]')."""
from __future__ import annotations

import importlib.util
import math
import signal
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from iapas.cli.common import user_errors
from iapas.errors import SettingsError

if TYPE_CHECKING:
    from iapas.serve.settings import ServeSettings

SERVE_EXAMPLES = """
Examples:

  iapas prompts --normal line7/good --out ctx7.json    # once per product line

  iapas serve --context line7=ctx7.json --context line8=ctx8.json --port 8000

  curl -F file=@part.png 'http://127.0.0.1:8000/v1/inspect?line=line7&mask=rle'

  IAPAS_SERVE_TOKEN=$(openssl rand -hex 16) iapas serve --context line7=ctx7.json --host 0.0.0.0

Open http://127.0.0.1:8000/ for the drop-an-image page, /docs for the API, /metrics for Prometheus.
SIGTERM or Ctrl-C: stop taking requests, let the ones in flight finish within --drain-seconds (default 20), exit 0.
"""
LOOPBACK = "127.0.0.1"


def _check_installed() -> None:
    missing = [m for m in ("fastapi", "uvicorn", "multipart", "prometheus_client") if importlib.util.find_spec(m) is None]
    if missing:
        raise SettingsError(f"`iapas serve` needs {', '.join(missing)}: pip install 'iapas[serve]'")


def bind_host(host: str | None, token: str | None) -> str:
    """The address to listen on: as given; else all interfaces when a token protects the API, else loopback
    (an unprotected API is never exposed to the network by default)."""
    if host:
        return host
    return "0.0.0.0" if token else LOOPBACK


def register(app: typer.Typer) -> None:
    """Add serve."""

    @app.command(help="Serve inspections over HTTP: JSON API, a drop-an-image page, health and metrics.",
                 epilog=SERVE_EXAMPLES)
    @user_errors
    def serve(
        contexts: Annotated[list[str], typer.Option("--context", help="NAME=context.json from `iapas prompts`; repeat for each product line")],
        host: Annotated[Optional[str], typer.Option("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 when a token is set)")] = None,
        port: Annotated[int, typer.Option("--port", help="TCP port")] = 8000,
        max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="largest accepted upload; larger: 413")] = 20.0,
        max_pixels: Annotated[int, typer.Option("--max-pixels", help="largest accepted image (width x height); larger: 413")] = 50_000_000,
        queue_size: Annotated[int, typer.Option("--queue-size", help="requests that may wait for a model worker; more: 503 + Retry-After")] = 8,
        timeout: Annotated[float, typer.Option("--timeout", help="seconds from arrival to answer; later: 504")] = 30.0,
        body_timeout: Annotated[float, typer.Option("--body-timeout", help="seconds a request body may take to arrive after its headers; later: 408")] = 10.0,
        max_uploads: Annotated[int, typer.Option("--max-uploads", help="request bodies received at once; more: 503 at once (health probes are never refused)")] = 32,
        decode_pixels: Annotated[Optional[int], typer.Option("--decode-pixels", help="image pixels decoding at once; more wait (default: --max-pixels, one largest image at a time)")] = None,
        map_pixels: Annotated[int, typer.Option("--map-pixels", help="images larger than this (width x height, after the 4096 px side limit) are scored at this many pixels; boxes, regions and mask are scaled back, the overlay is at the scored size")] = 8_000_000,
        drain_seconds: Annotated[float, typer.Option("--drain-seconds", help="on SIGTERM, seconds requests in flight may take to finish before the server stops")] = 20.0,
        token_env: Annotated[Optional[str], typer.Option("--token-env", help="environment variable holding the bearer token (default IAPAS_SERVE_TOKEN, optional; a variable named here must be set)")] = None,
        device: Annotated[Optional[list[str]], typer.Option("--device", help="one model worker per device, e.g. --device cuda:0 --device cuda:1 (default: the context's)")] = None,
        verdict_threshold: Annotated[Optional[float], typer.Option("--verdict-threshold", help="judge every line at this image score instead of its context's calibrated threshold")] = None,
    ) -> None:
        _check_installed()
        from iapas.serve.settings import MIN_MAP_PIXELS, TOKEN_ENV, ServeSettings, token_from_env

        if not 0 <= port <= 65535:
            raise SettingsError(f"--port {port} must be in 0..65535")
        for flag, value in (("--max-upload-mb", max_upload_mb), ("--max-pixels", max_pixels),
                            ("--queue-size", queue_size), ("--timeout", timeout), ("--body-timeout", body_timeout),
                            ("--max-uploads", max_uploads), ("--decode-pixels", decode_pixels or 1),
                            ("--map-pixels", map_pixels),
                            ("--drain-seconds", drain_seconds)):
            if not value > 0:
                raise SettingsError(f"{flag} {value} must be positive")
            if value == float("inf"):
                raise SettingsError(f"{flag} {value} must be finite")
        if map_pixels < MIN_MAP_PIXELS:
            raise SettingsError(f"--map-pixels {map_pixels} is too small to score a part on; give at least {MIN_MAP_PIXELS}")
        token = token_from_env(token_env or TOKEN_ENV, required=token_env is not None)
        settings = ServeSettings(max_upload_bytes=int(max_upload_mb * 1e6), max_pixels=max_pixels, queue_size=queue_size,
                                 timeout_s=timeout, body_timeout_s=body_timeout, max_uploads=max_uploads,
                                 decode_pixels=decode_pixels, map_pixels=map_pixels, drain_s=drain_seconds, token=token,
                                 devices=tuple(device or [None]))
        run_server(contexts, bind_host(host, token), port, settings, verdict_threshold)


def run_server(contexts: list[str], host: str, port: int, settings: ServeSettings,
               verdict_threshold: float | None = None) -> None:
    """Load the lines and their models, then serve until SIGTERM / Ctrl-C (in-flight requests finish)."""
    import uvicorn

    from iapas.serve.accesslog import event, setup_logging, warning
    from iapas.serve.app import create_app
    from iapas.serve.lines import load_lines
    from iapas.serve.workers import ModelWorkers

    lines = load_lines(contexts, verdict_threshold)
    setup_logging()
    if settings.token is None and host not in (LOOPBACK, "localhost", "::1"):
        warning(f"no token set: anyone who can reach {host}:{port} can use this API (set one with the --token-env "
                "variable)", host=host, port=port)
    event("loading models", lines={n: str(line.path) for n, line in lines.items()},
          devices=[d or "auto" for d in settings.devices])
    workers = ModelWorkers(lines, list(settings.devices), settings.queue_size)
    workers.start()
    # No uvicorn limit_concurrency: beyond it uvicorn answers every request, health probes included, with a
    # plain-text 503. Uploads are bounded by iapas.serve.guard instead (bodies read at once, a deadline per body);
    # an idle keep-alive connection closes after 5 s.
    config = uvicorn.Config(create_app(lines, workers, settings), host=host, port=port, log_config=None,
                            access_log=False, lifespan="on", timeout_keep_alive=5,
                            timeout_graceful_shutdown=max(1, math.ceil(settings.drain_s)))
    server = uvicorn.Server(config)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; absorb it so a clean stop exits 0
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    except SystemExit:
        raise SettingsError(f"cannot serve on {host}:{port} (address in use or not available here)") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        workers.close(timeout=2)
