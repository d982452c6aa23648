"""What an inspector acts on (issue 14), from a real `iapas run` of the offline profile on MTD-like tiles
with and without blowholes, in nested lot folders: overlays red on defects and colourless elsewhere
(measured on the written PNGs), verdicts in results.csv / summary.json, exit status 5 with
--fail-on-defect, the run report rendered by headless Chromium with no broken picture, and the COCO export
read back by pycocotools."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion
from typer.testing import CliRunner


from cli_apps import command_app
from mtd_like import write_tiles
from iapas.cli import run as run_cli
from iapas.outputs import drawing as d

pytestmark = pytest.mark.slow  # real offline runs plus Chromium

CASES = {"lotA/a1.png": True, "lotA/a2.png": False, "lotB/b1.png": True, "lotB/b2.png": False}
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray], int]:
    root = tmp_path_factory.mktemp("inspector")
    masks = write_tiles(root, n_normal=6, defects=CASES, size=160)
    result = CliRunner().invoke(command_app(run_cli), [
        "run", "--normal", str(root / "normal"), "--images", str(root / "check"), "--out", str(root / "out"),
        "-r", "6", "--export", "coco", "--fail-on-defect", "--kind", "texture"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return root, masks, result.exit_code


def _picture(out: Path, name: str) -> np.ndarray:
    """The picture part of NAME_overlay.png (its position is recorded in NAME.json)."""
    meta = json.loads((out / f"{name}.json").read_text())
    x, y, w, h = meta["overlay_image_box"]
    return np.asarray(Image.open(out / f"{name}_overlay.png").convert("RGB"))[y:y + h, x:x + w].astype(int)


def _red(px: np.ndarray) -> np.ndarray:
    return (px[..., 0] > 180) & (px[..., 1] < 100) & (px[..., 2] < 100)


def _colourless(px: np.ndarray, tol: int = 3) -> np.ndarray:
    """Grey pixels (the tiles are grey): no heat colour, box or outline drawn there."""
    return (np.abs(px[..., 0] - px[..., 1]) <= tol) & (np.abs(px[..., 1] - px[..., 2]) <= tol)


def test_overlay_is_red_on_the_blowhole_and_clean_tiles_keep_no_colour(mixed_run) -> None:  # type: ignore[no-untyped-def]
    root, masks, _ = mixed_run
    out = root / "out"
    for rel, bad in CASES.items():
        name = rel.rsplit(".", 1)[0]
        pic = _picture(out, name)
        if bad:
            gt = d.resize_mask(masks[rel], (pic.shape[1], pic.shape[0]))
            core = binary_erosion(gt, iterations=3)
            assert _red(pic[core]).mean() > 0.9, f"{rel}: the blowhole is not shown red"
        else:
            assert _colourless(pic).mean() > 0.999, f"{rel}: a clean tile got heat colours"
            src = np.asarray(Image.open(root / "check" / rel).convert("RGB"))
            assert np.abs(pic - d.resize_rgb(src, (pic.shape[1], pic.shape[0])).astype(int)).max() <= 1  # image as it is


def test_offline_like_map_shows_nothing_below_the_threshold_and_red_on_the_defect(tmp_path: Path) -> None:
    """The issue's case: offline scores d/(d+t) sit between 0.4 and 0.65. Anchored at the threshold, the
    clean surface of a defect image stays exactly the image and the defect turns red."""
    from iapas.outputs.run_items import verdict_fields
    from iapas.outputs.writer import write_prediction
    from iapas.types import Box, Prediction
    from mtd_like import blowhole, tile

    rng = np.random.default_rng(3)
    img, gt = blowhole(tile(rng, 200), rng, radius=12)
    yy, xx = np.mgrid[:200, :200]
    cy, cx = np.argwhere(gt).mean(0)
    bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 12.0 ** 2))
    score = (0.42 + 0.05 * rng.random((200, 200)) + 0.3 * bump).astype(np.float32)  # 0.42-0.47 on clean surface
    pred = Prediction(path="lot/blowhole.png", score_map=score, mask=score >= 0.5, boxes=[Box((cx - 20, cy - 20, cx + 20, cy + 20), "anomaly", float(score.max()))],
                      image_score=float(score.max()), profile="offline")
    rgb = np.repeat(img[..., None], 3, axis=2)
    write_prediction(tmp_path, "blowhole", rgb, pred, "d", scale=(0.5, 2 / 3), extra={"verdict": "defect"})
    pic = _picture(tmp_path, "blowhole")
    size = (pic.shape[1], pic.shape[0])  # small images are drawn larger
    gt_shown = d.resize_mask(gt, size)
    far = ~binary_dilation(gt_shown, iterations=80)
    assert far.mean() > 0.5
    assert np.array_equal(pic[far], d.resize_rgb(rgb, size).astype(int)[far])  # untouched, not even tinted
    assert _red(pic[binary_erosion(gt_shown, iterations=4)]).mean() > 0.9
    assert verdict_fields(pred, _offline_context())["verdict"] == "defect"


def _offline_context():  # type: ignore[no-untyped-def]
    from iapas.config import build_config
    from iapas.context import Context

    return Context(profile="offline", config=build_config(profile="offline"))


def test_results_csv_summary_and_exit_status_of_a_mixed_run(mixed_run) -> None:  # type: ignore[no-untyped-def]
    root, _, code = mixed_run
    out = root / "out"
    assert code == 5  # --fail-on-defect, every input processed, defects found
    rows = list(csv.DictReader((out / "results.csv").open(encoding="utf-8")))
    assert [r["path"] for r in rows] == [str(root / "check" / rel) for rel in CASES]
    assert list(rows[0])[:5] == ["path", "verdict", "image_score", "largest_region_area", "top_phrase"]
    for row, bad in zip(rows, CASES.values()):
        assert row["verdict"] == ("defect" if bad else "ok") and row["status"] == "ok"
        assert (float(row["image_score"]) >= float(row["threshold"])) == bad
        assert (int(row["largest_region_area"]) > 0) == bad and row["top_phrase"].endswith(" region") == bad
    summary = json.loads((out / "summary.json").read_text())
    # the verdict threshold is calibrated on the normal tiles (leave-one-out map maxima), above the pixel threshold 0.5
    assert summary["threshold"] == pytest.approx(float(rows[0]["threshold"])) and summary["threshold"] > 0.5
    assert "leave-one-out" in summary["threshold_rule"] and summary["verdict_counts"] == {"defect": 2, "ok": 2}
    assert [i["verdict"] for i in summary["inputs"]] == [row["verdict"] for row in rows]
    assert (out / "lotA" / "a1_overlay.png").is_file() and (out / "lotB" / "b2.npz").is_file()  # mirrored lots


def test_rerun_without_the_flag_exits_0_and_reuses_verdicts(mixed_run) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = mixed_run
    out = root / "out"
    before = (out / "results.csv").read_text()
    result = CliRunner().invoke(command_app(run_cli), [
        "run", "--normal", str(root / "normal"), "--images", str(root / "check"), "--out", str(out), "-r", "6", "--kind", "texture"])
    assert result.exit_code == 0, result.output
    assert (out / "results.csv").read_text() == before
    assert all(i.get("cached") for i in json.loads((out / "summary.json").read_text())["inputs"])


def test_coco_export_round_trips_through_pycocotools(mixed_run) -> None:  # type: ignore[no-untyped-def]
    from pycocotools.coco import COCO

    root, _, _ = mixed_run
    out = root / "out"
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == len(CASES)
    assert all(c["name"].endswith(" region") for c in coco.loadCats(coco.getCatIds()))  # offline: descriptions
    for img in coco.loadImgs(coco.getImgIds()):
        name = img["iapas_name"]
        written = np.asarray(Image.open(out / f"{name}_mask.png")) > 127
        assert written.shape == (img["height"], img["width"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        decoded = np.zeros_like(written)
        for ann in anns:
            m = coco.annToMask(ann).astype(bool)
            assert not (decoded & m).any()  # instances are disjoint
            ys, xs = np.nonzero(m)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert ann["area"] == m.sum() and 0.0 <= ann["score"] <= 1.0
            decoded |= m
        assert np.array_equal(decoded, written), name
        assert bool(anns) == (img["verdict"] == "defect")


@pytest.mark.skipif(CHROMEDRIVER is None or CHROMIUM is None, reason="chromium and chromium-driver are not installed")
def test_run_report_renders_in_chromium_with_no_broken_picture(mixed_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    root, _, _ = mixed_run
    page = root / "out" / "report.html"
    html = page.read_text()
    assert html.index("lotA/a1") < html.index('id="clean"') and html.index("lotB/b1") < html.index('id="clean"')
    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600",
                f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(arg)
    opts.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        driver.get(page.resolve().as_uri())
        driver.execute_script("document.querySelectorAll('img[loading=lazy]').forEach(function (i) { i.loading = 'eager'; });")
        WebDriverWait(driver, 60).until(lambda drv: drv.execute_script(
            "return Array.prototype.every.call(document.images, function (i) { return i.complete; });"))
        loaded, broken, pending = driver.execute_script(
            "iapasCountImages(); var b = document.body.dataset;"
            "return [b.imagesLoaded, b.imagesBroken, b.imagesPending].map(Number);")
        n_img = html.count("<img ")
        assert (loaded, broken, pending) == (n_img, 0, 0)
        assert n_img == len(CASES) + 1  # 2 defect overlays + 2 clean thumbnails + the score histogram
        defects = driver.find_elements("css selector", "#defects figure.defect img")
        assert len(defects) == 2 and all(im.size["width"] > 300 for im in defects)
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
        arr = np.asarray(Image.open(shot).convert("RGB")).astype(int)
        assert _red(arr).sum() > 200  # the defects' red shows on the rendered page
    finally:
        driver.quit()
