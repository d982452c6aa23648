"""`/docs` of `iapas serve` in headless Chromium with every non-loopback request failing: Swagger UI's files
come from the installed `fastapi-offline`, so the page still lists the API's operations on an air-gapped PC.
A two-line server also shows that `?line=` stays required when more than one line is served."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from corpus import write_normals
from serve_helpers import BROWSER_MARKS, Server, chrome, start_server

pytestmark = BROWSER_MARKS
# every host name resolves to nothing but the loopback address, and anything not on loopback goes to a dead proxy
OFFLINE_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1200,1000",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                 "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from iapas.config import build_config
    from iapas.pipeline import Pipeline

    root = tmp_path_factory.mktemp("docs")
    write_normals(root / "normal", n=4, size=(80, 64))
    Pipeline(build_config(profile="offline", num_normal=4, feature_size=128)).fit(root / "normal").save(root / "ctx.json")
    srv = start_server({"tile": root / "ctx.json", "other": root / "ctx.json"}, root / "server.log")
    yield srv, root
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def offline_browser(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    driver = chrome(OFFLINE_FLAGS, tmp_path_factory.mktemp("chrome-profile"), script_timeout=30)
    yield driver
    driver.quit()


def _fetch_status(driver, url: str) -> str:  # type: ignore[no-untyped-def]
    """What the page's own fetch of `url` gives: 'ok', 'http NNN' or 'failed'."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {mode: 'no-cors'}).then(r => done(r.type === 'opaque' || r.ok ? 'ok' : 'http ' + r.status))"
        ".catch(() => done('failed'));", url)


def test_docs_render_the_operations_with_the_network_blocked(served, offline_browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    srv, _ = served
    driver = offline_browser
    driver.get(srv.url + "/docs")
    WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 4)
    paths = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/inspect", "/v1/lines", "/healthz", "/readyz"} <= paths, paths
    # every script and style sheet of the page comes from this server
    sources = driver.execute_script(
        "return [...document.querySelectorAll('script[src], link[href]')].map(e => e.src || e.href)")
    assert sources and all(s.startswith(srv.url) for s in sources), sources
    # the network really is blocked: the CDN FastAPI's default page uses cannot be reached from here
    assert _fetch_status(driver, "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css") == "failed"
    assert _fetch_status(driver, srv.url + "/docs/assets/swagger-ui.css") == "ok"


def test_docs_assets_are_a_fixed_list(served) -> None:  # type: ignore[no-untyped-def]
    srv, _ = served
    css = httpx.get(f"{srv.url}/docs/assets/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and len(css.content) > 10_000
    for name in ("index.html", "..%2F..%2Fpyproject.toml", "redoc.standalone.js"):
        assert httpx.get(f"{srv.url}/docs/assets/{name}").status_code == 404


def test_two_lines_served_still_need_the_line_parameter(served) -> None:  # type: ignore[no-untyped-def]
    srv, root = served
    with (root / "normal" / "good_00.png").open("rb") as fh:
        res = httpx.post(f"{srv.url}/v1/inspect", files={"file": ("a.png", fh)}, timeout=120)
    assert res.status_code == 422 and "line" in res.json()["error"] and "tile" in res.json()["error"]
