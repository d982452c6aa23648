"""`/docs` without a network: Swagger UI served from an installed package, not from a CDN.

An air-gapped line PC cannot reach the CDN FastAPI's default page loads Swagger UI from, so that page
stays blank there. Here the page's script, style sheet and icon come from `/docs/assets/`, read from the
Swagger UI 5 files that the `fastapi-offline` package ships (part of the `serve` extra; Swagger UI 5 is
the first to read OpenAPI 3.1, which FastAPI writes). Without it `/docs` says what to install, and
`/openapi.json` still describes the API.
"""
# No `from __future__ import annotations`: FastAPI reads the route signatures.
from pathlib import Path
from typing import Any, Optional

DOCS_ASSETS = "/docs/assets"
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


def swagger_ui_dir() -> Optional[Path]:
    """The folder of Swagger UI's files in the installed `fastapi-offline` (found without importing it), or None."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("fastapi_offline")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "static"
    return folder if all((folder / name).is_file() for name in ASSET_FILES) else None


def add_offline_docs(api: Any, title: str) -> None:
    """Add `/docs` (Swagger UI of `api.openapi_url`) and its assets to a FastAPI app built with docs_url=None."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse, Response

    folder = swagger_ui_dir()

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if folder is None:
            return HTMLResponse(
                "<!doctype html><title>iapas API</title><p>The interactive API page needs the "
                "<code>fastapi-offline</code> package: <code>pip install 'iapas[serve]'</code>. The API "
                f"is described at <a href=\"{api.openapi_url}\">{api.openapi_url}</a>.</p>", status_code=200)
        return get_swagger_ui_html(openapi_url=api.openapi_url, title=f"{title} - API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    @api.get(DOCS_ASSETS + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        if folder is None or name not in ASSET_FILES:  # a fixed list: no path from the URL reaches the disk
            return Response(status_code=404)
        return FileResponse(folder / name, media_type=_MEDIA[Path(name).suffix],
                            headers={"Cache-Control": "public, max-age=86400"})
