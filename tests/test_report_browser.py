"""The reports as people see them: rendered by headless Chromium, every picture loaded, table visible.

Needs the Debian packages chromium (and chromium-driver in CI). The page records on <body> how many
pictures loaded and how many are broken; `--dump-dom` after load reads that back.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _report_data import make_dataset, make_eval_folder, make_run_folder
from iapas.outputs.compare import write_comparison
from iapas.outputs.report import write_evaluation_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _chromium(page: Path, tmp: Path, *extra: str) -> str:
    profile = tmp / f"chrome-profile-{len(list(tmp.glob('chrome-profile-*')))}"
    profile.mkdir()
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _dom(page: Path, tmp: Path) -> str:
    return _chromium(page, tmp, "--virtual-time-budget=10000", "--dump-dom")


def _body_counts(dom: str) -> tuple[int, int]:
    body = re.search(r"<body[^>]*>", dom).group(0)
    loaded = re.search(r'data-images-loaded="(\d+)"', body)
    broken = re.search(r'data-images-broken="(\d+)"', body)
    assert loaded and broken, f"the load check did not run: {body}"
    return int(loaded.group(1)), int(broken.group(1))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    items = make_dataset(root / "data", categories=("tile",), n_good=2, n_bad=4)
    a = make_eval_folder(root / "eval_a", items, "offline", quality=1.0)
    b = make_eval_folder(root / "eval_b", items, "paper", quality=0.4)
    return write_evaluation_report(a, compare_with=[b], max_panel_rows=4)


def test_report_renders_with_all_images_and_the_table(report: Path, tmp_path: Path) -> None:
    dom = _dom(report, tmp_path)
    n_img = len(re.findall(r"<img ", report.read_text()))
    assert _body_counts(dom) == (n_img, 0)
    assert "Pixel AP" in dom and "protocol: standard" in dom
    m = re.search(r'<td class="name">tile</td><td class="num">(\d+\.\d\d)</td>', dom)
    assert m, "the metrics row of the category is missing from the rendered page"


def test_screenshot_shows_header_table_and_pictures(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _chromium(report, tmp_path, "--window-size=1280,2000", f"--screenshot={shot}")
    arr = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert arr.shape[:2] == (2000, 1280)
    assert arr.std() > 20  # not a blank page
    header = arr[:60]
    assert (header.mean(axis=-1) < 60).mean() > 0.7  # the dark title bar
    dark_text = (arr[150:500, 20:900].max(axis=-1) < 90).mean()
    assert dark_text > 0.005  # table text is drawn
    # colourful pixels: the plots and the panel's heat maps really loaded
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    saturated = (np.max(arr, axis=-1) - np.min(arr, axis=-1)) > 60
    assert saturated[600:].mean() > 0.03  # a page of text and grey boxes stays far below this
    orange = (r > 180) & (g < 140) & (b < 100)  # anomalous histogram / PR series colour
    assert orange.sum() > 200


def test_a_broken_picture_is_detected(report: Path, tmp_path: Path) -> None:
    page = tmp_path / "copy" / "report.html"
    shutil.copytree(report.parent / "report_assets", page.parent / "report_assets")
    page.write_text(report.read_text())
    victim = sorted((page.parent / "report_assets").glob("*.png"))[0]
    victim.unlink()
    loaded, broken = _body_counts(_dom(page, tmp_path))
    assert broken == 1 and loaded == len(re.findall(r"<img ", report.read_text())) - 1


def test_compare_page_renders(tmp_path: Path) -> None:
    items = make_dataset(tmp_path / "data", categories=("tile",), n_good=1, n_bad=3)
    a = make_run_folder(tmp_path / "run_a", items, "offline", 1.0)
    b = make_run_folder(tmp_path / "run_b", items, "fused", 0.5)
    page = write_comparison([a, b], tmp_path / "cmp", max_images=4)
    loaded, broken = _body_counts(_dom(page, tmp_path))
    assert loaded >= 1 and broken == 0


def test_run_report_renders(tmp_path: Path) -> None:
    from iapas.outputs.run_report import write_run_report

    items = make_dataset(tmp_path / "data", categories=("tile",), n_good=1, n_bad=2)
    page = write_run_report(make_run_folder(tmp_path / "run", items, "offline", 0.8, overlays=True))
    loaded, broken = _body_counts(_dom(page, tmp_path))
    assert (loaded, broken) == (len(items) + 1, 0)
