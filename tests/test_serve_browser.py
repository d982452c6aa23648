"""The `iapas serve` page in headless Chromium (Selenium + Debian's chromedriver): choose an image, see the
verdict and the overlay, and the verdict equals the API's answer for the same image."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from PIL import Image

from corpus import pattern, write_normals
from serve_helpers import BROWSER_MARKS, Server, chrome, start_server

pytestmark = BROWSER_MARKS
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1200,1000"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from iapas.config import build_config
    from iapas.pipeline import Pipeline

    root = tmp_path_factory.mktemp("page")
    write_normals(root / "normal", n=4, size=(80, 64))
    Pipeline(build_config(profile="offline", num_normal=4, feature_size=128)).fit(root / "normal").save(root / "ctx.json")
    good, bad = pattern(64, 80, seed=7), pattern(64, 80, seed=8)
    bad[10:40, 20:60] = 255
    Image.fromarray(good).save(root / "good.png")
    Image.fromarray(bad).save(root / "scratch.png")
    srv = start_server({"tile": root / "ctx.json", "other": root / "ctx.json"}, root / "server.log")
    yield srv, root
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    driver = chrome(FLAGS, tmp_path_factory.mktemp("chrome-profile"))
    yield driver
    driver.quit()


def _upload(driver, url: str, image: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    driver.find_element(By.ID, "file").send_keys(str(image.resolve()))
    WebDriverWait(driver, 120).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error"))
    read = lambda i: driver.find_element(By.ID, i).text  # noqa: E731
    overlay = driver.find_element(By.ID, "overlay")
    return {"state": driver.find_element(By.TAG_NAME, "body").get_attribute("data-state"), "verdict": read("verdict"),
            "score": read("score"), "error": read("error"),
            "overlay_width": driver.execute_script("return arguments[0].naturalWidth", overlay)}


def test_page_shows_the_verdict_and_overlay_the_api_gives(served, browser) -> None:  # type: ignore[no-untyped-def]
    srv, root = served
    seen = set()
    for name in ("good.png", "scratch.png"):
        shown = _upload(browser, srv.url + "/", root / name)
        assert shown["state"] == "done", shown["error"]
        with (root / name).open("rb") as fh:
            api = httpx.post(f"{srv.url}/v1/inspect", params={"line": "tile"}, files={"file": (name, fh)}, timeout=120).json()
        assert shown["verdict"] == api["verdict"]
        assert shown["score"] == f"{api['image_score']:.3f}"
        assert shown["overlay_width"] > 0  # the overlay picture really decoded
        seen.add(shown["verdict"])
    assert seen == {"ok", "defect"}


def test_page_shows_the_reason_for_a_bad_file(served, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv, _ = served
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    shown = _upload(browser, srv.url + "/", text)
    assert shown["state"] == "error"
    assert shown["error"].startswith("422: not an image: the file holds text")
