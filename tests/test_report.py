"""report.html of an evaluation folder: header, metrics table, plots, context, panels, worst cases."""
from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _report_data import make_dataset, make_eval_folder
from iapas.evaluation.records import EvalRecord, iter_records, load_record, save_record
from iapas.outputs.panels import PanelRow, render_panel
from iapas.outputs.report import ASSETS, choose_panel_records, protocol_view, write_evaluation_report

pytestmark = pytest.mark.slow  # end to end: left out of the `-m "not slow"` loop, run in CI


class _Page(HTMLParser):
    """Collects img sources, link targets, captions and visible text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []
        self.captions: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(a[key])
        self._in.append(tag)

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        self.text.append(data)
        if "caption" in self._in:
            self.captions.append(data)


def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def evals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    root = tmp_path_factory.mktemp("report")
    items = make_dataset(root / "data")
    a = make_eval_folder(root / "eval_offline", items, "offline", quality=1.0)
    b = make_eval_folder(root / "eval_paper", items, "paper", quality=0.4)
    write_evaluation_report(a, compare_with=[b], max_panel_rows=4)
    return a, b, items


def test_header_and_protocol_label_on_every_table(evals) -> None:  # type: ignore[no-untyped-def]
    a, _, _ = evals
    page = _parse(a / "report.html")
    text = " ".join(page.text)
    assert "dataset" in text and "mtd" in text and "offline" in text
    tables = (a / "report.html").read_text().count("<table")
    assert tables >= 2 and len(page.captions) == tables
    assert all("protocol: standard" in c for c in page.captions)


def test_metrics_table_shows_percentages_of_metrics_json(evals) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = evals
    html = (a / "report.html").read_text()
    m = json.loads((a / "metrics.json").read_text())
    for cat, vals in m["categories"].items():
        row = re.search(rf'<td class="name">{cat}</td>(.*?)</tr>', html).group(1)
        assert f"{100 * vals['pixel_ap']:.2f}" in row and f"{100 * vals['image_auroc']:.2f}" in row
        assert "\u2014" in row  # pixel_aupro is null in the fixture: shown as a dash, not 0
    mean_row = re.search(r'<tr class="mean">(.*?)</tr>', html).group(1)
    assert f"{100 * m['mean']['pixel_ap']:.2f}" in mean_row
    other = json.loads((b / "metrics.json").read_text())
    assert f"{100 * other['mean']['pixel_ap']:.2f}" in html  # compared run in its own table
    assert "/data/broken.png" in html  # failures are listed


def test_every_picture_is_a_local_relative_file(evals) -> None:  # type: ignore[no-untyped-def]
    a, _, _ = evals
    page = _parse(a / "report.html")
    assert len(page.imgs) >= 2 * 3 + 2 * 2  # per category: 3 plots, a panel, worst cases
    for src in page.imgs:
        assert src.startswith(f"{ASSETS}/") and not src.startswith("/")
        with Image.open(a / src) as im:
            assert im.format == "PNG" and min(im.size) > 50
    assert not [u for u in page.urls if re.match(r"^(https?:)?//", u)]
    html = (a / "report.html").read_text()
    assert "<link" not in html and "@import" not in html and "<script src" not in html


def test_stage1_context_is_shown(evals) -> None:  # type: ignore[no-untyped-def]
    a, _, _ = evals
    text = " ".join(_parse(a / "report.html").text)
    for word in ("chipped edge", "tagger fell back to CLIP", "Final prompt", "Object tag", "LLM words"):
        assert word in text


def test_worst_false_positives_and_misses_are_ranked(evals) -> None:  # type: ignore[no-untyped-def]
    a, _, _ = evals
    html = (a / "report.html").read_text()
    recs = list(iter_records(a, "tile", 111))
    worst_normal = max((r for r in recs if r.label == 0), key=lambda r: r.image_score)
    weakest = min((r for r in recs if r.label == 1), key=lambda r: r.image_score)
    section = html[html.index('id="cat-tile"'):]
    fp = section[section.index("Worst false positives"): section.index("Misses")]
    miss = section[section.index("Misses"):]
    assert f"normal image, image score {worst_normal.image_score:.3f}" in fp.split("</figure>")[0]
    assert f"anomalous image, image score {weakest.image_score:.3f}" in miss.split("</figure>")[0]


def test_panel_has_one_score_column_per_compared_folder(evals, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, _, _ = evals
    with Image.open(a / ASSETS / "tile_panel.png") as im:
        four_cols = im.size
    alone = tmp_path / "alone"
    shutil.copytree(a, alone)  # the module's folder stays as the other tests expect it
    write_evaluation_report(alone, compare_with=None, max_panel_rows=4, overlays=False)
    with Image.open(alone / ASSETS / "tile_panel.png") as im:
        three_cols = im.size
    assert four_cols[0] - three_cols[0] == 200 + 4  # one more 200 px cell and its gap
    assert four_cols[1] == three_cols[1]


def test_missing_source_images_become_placeholders(tmp_path: Path) -> None:
    items = make_dataset(tmp_path / "data", categories=("tile",), n_good=1, n_bad=2)
    ev = make_eval_folder(tmp_path / "ev", items)
    for it in items:
        Path(it["path"]).unlink()
    out = write_evaluation_report(ev)
    page = _parse(out)
    assert all((ev / src).is_file() for src in page.imgs)


def test_category_without_records_says_so(tmp_path: Path) -> None:
    items = make_dataset(tmp_path / "data", categories=("tile",), n_good=1, n_bad=2)
    ev = make_eval_folder(tmp_path / "ev", items)
    m = json.loads((ev / "metrics.json").read_text())
    m["categories"]["empty"] = dict(m["categories"]["tile"])
    (ev / "metrics.json").write_text(json.dumps(m))
    html = write_evaluation_report(ev, overlays=False).read_text()
    assert "No cached records" in html[html.index('id="cat-empty"'):]


def _rec(label: int, defect: str, score: float, path: str) -> EvalRecord:
    sm = np.linspace(0, score, 16, dtype=np.float32).reshape(4, 4) + 0.1
    gt = np.zeros((4, 4), bool)
    gt[1:3, 1:3] = bool(label)
    return EvalRecord("c", 111, path, None, defect, label, sm, gt, score, {})


def test_panel_selection_round_robins_defect_types_then_one_normal() -> None:
    recs = [_rec(1, "crack", 0.5, f"crack{i}") for i in range(4)] + [_rec(1, "hole", 0.5, "hole0")]
    recs += [_rec(0, "good", 0.2, "good0"), _rec(0, "good", 0.6, "good1")]
    chosen = [r.image_path for r in choose_panel_records(recs, 4)]
    assert chosen == ["crack0", "hole0", "crack1", "good1"]
    assert choose_panel_records(recs, 0) == []


def test_paper_protocol_view_normalises_per_map_then_per_category() -> None:
    # the harness already kept the official selection; the view applies the official normalisation
    recs = [_rec(1, "crack", 0.5, "a"), _rec(0, "good", 0.9, "b")]
    recs[1].map_range = [0.1, 2.0]  # the full-resolution maximum was above the resized map's
    paper = protocol_view(recs, "paper", "mtd")
    assert len(paper) == 2
    assert paper[0][0].min() == 0.0 and paper[0][0].max() == pytest.approx(1.0)  # largest after per-map min-max
    assert paper[1][0].max() == pytest.approx(0.9 / 1.9)  # its own range, then the category's
    standard = protocol_view(recs, "standard", "mtd")
    assert len(standard) == 2 and standard[1][0].max() == pytest.approx(1.0)


def test_render_panel_layout_and_placeholders() -> None:
    rgb = np.full((60, 80, 3), 100, np.uint8)
    gt = np.zeros((60, 80), bool)
    gt[10:20, 10:30] = True
    rows = [PanelRow("x/a.png", rgb, gt, [np.random.rand(30, 40), None], ["0.9", ""]),
            PanelRow("x/b.png", None, None, [np.random.rand(30, 40), np.random.rand(30, 40)], ["0.1", "0.2"])]
    img = render_panel(rows, ["offline", "paper"], cell=100)
    assert img.width == 2 * 10 + 4 * 100 + 3 * 4
    arr = np.asarray(img)
    gt_tile = arr[:, 10 + 104: 10 + 204]
    assert (gt_tile == 255).all(axis=-1).sum() > 100  # the defect is white in the ground-truth column
    with pytest.raises(ValueError):
        render_panel([], ["x"])


def test_records_of_other_settings_are_left_out(tmp_path: Path) -> None:
    items = make_dataset(tmp_path / "data", categories=("tile",), n_good=1, n_bad=2)
    ev = make_eval_folder(tmp_path / "ev", items)
    folder = ev / "cache" / "tile" / "seed111"
    current = sorted(folder.glob("*.npz"))
    stale = load_record(current[0])
    stale.image_path = str(tmp_path / "data" / "tile" / "good" / "gone_stale.png")
    save_record(folder / "0000stale0000000000000000.npz", stale)  # an earlier run with other settings
    html = write_evaluation_report(ev, overlays=False).read_text()
    assert "gone_stale" not in html
    assert "3 cached images" in html
    # when metrics.json cannot name its settings, every cached record is shown, with a note
    m = json.loads((ev / "metrics.json").read_text())
    m["config"]["nms_iou"] = 0.3
    (ev / "metrics.json").write_text(json.dumps(m))
    html = write_evaluation_report(ev, overlays=False).read_text()
    assert "4 cached images" in html and "do not match the settings" in html


def test_every_evaluated_image_has_a_linked_overlay(evals) -> None:  # type: ignore[no-untyped-def]
    a, _, items = evals
    page = _parse(a / "report.html")
    links = [u for u in page.urls if "/overlays/" in u]
    assert len(links) == len(items) == len(set(links))
    for u in links:
        with Image.open(a / u) as im:
            assert im.width >= 384
    html = (a / "report.html").read_text()
    tile = html[html.index('id="cat-tile"'):html.index('id="cat-brick"')]
    scores = [float(x) for x in re.findall(r'<td class="num">(\d\.\d{4})</td>', tile)]
    assert scores == sorted(scores, reverse=True) and len(scores) == sum(i["category"] == "tile" for i in items)


def test_run_report_ranks_images_and_lists_failures(tmp_path: Path) -> None:
    from _report_data import make_run_folder
    from iapas.outputs.run_report import write_run_report

    items = make_dataset(tmp_path / "data", categories=("tile",), n_good=1, n_bad=3)
    run = make_run_folder(tmp_path / "run", items, "offline", 0.8, overlays=True)
    ctx_file = tmp_path / "ctx.json"
    ctx_file.write_text(json.dumps({"profile": "paper", "tags": ["tile"], "object_tag": "magnetic tile",
                                    "defect_words": ["blowhole"], "final_prompt": ["blowhole", "defect"]}))
    summary = json.loads((run / "summary.json").read_text())
    summary["context"] = str(ctx_file)
    (run / "summary.json").write_text(json.dumps(summary))
    page = write_run_report(run)
    parsed = _parse(page)
    html = page.read_text()
    assert all((run / src).is_file() for src in parsed.imgs) and len(parsed.imgs) == len(items) + 1
    scores = [float(x) for x in re.findall(r"<figcaption>#\d+ \S+ (\d\.\d{3})</figcaption>", html)]
    assert len(scores) == len(items) and scores == sorted(scores, reverse=True)  # no verdicts recorded: all clean
    assert "/lot7/unreadable.png" in html and "magnetic tile" in html and "blowhole" in html
    assert "threshold: <b>not recorded" in html


def test_run_report_pages_defects_first_then_clean_and_drops_stale_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of images stay usable: defects and clean images are split into pages (here 2 per page)."""
    from _report_data import make_run_folder
    from iapas.outputs import run_report

    monkeypatch.setattr(run_report, "DEFECTS_PER_PAGE", 2)
    monkeypatch.setattr(run_report, "CLEAN_PER_PAGE", 2)
    items = make_dataset(tmp_path / "data", categories=("tile",), n_good=3, n_bad=4)
    run = make_run_folder(tmp_path / "run", items, "offline", 0.8, overlays=True)
    summary = json.loads((run / "summary.json").read_text())
    scores = {}
    for item in summary["inputs"]:
        if item["status"] == "ok":
            scores[item["name"]] = json.loads((run / f"{item['name']}.json").read_text())["image_score"]
    cut = sorted(scores.values())[2]  # the 3 lowest are clean, the 4 highest defects
    for item in summary["inputs"]:
        if item["status"] == "ok":
            item["verdict"] = "defect" if scores[item["name"]] > cut else "ok"
    summary["threshold"] = cut + 1e-9
    (run / "summary.json").write_text(json.dumps(summary))
    page = run_report.write_run_report(run)
    html = page.read_text()
    first_defects = html.split('id="clean"')[0]
    assert first_defects.count('<figure class="defect">') == 2 and 'report_pages/defects_002.html' in html
    assert html.count('<figure class="tile">') == 2 and 'report_pages/clean_002.html' in html
    second = run / "report_pages" / "defects_002.html"
    sub = _parse(second)
    assert len(sub.imgs) == 2 and all((second.parent / src).resolve().is_file() for src in sub.imgs)
    ranked = [float(x) for x in re.findall(r"image score (\d\.\d{3})", first_defects + second.read_text())]
    assert ranked == sorted(ranked, reverse=True) and min(ranked[:4]) > cut
    assert 'href="../report.html"' in second.read_text()
    monkeypatch.setattr(run_report, "DEFECTS_PER_PAGE", 10)
    run_report.write_run_report(run)
    assert not second.exists() and (run / "report_pages" / "clean_002.html").exists()


def test_run_report_needs_a_run_folder(tmp_path: Path) -> None:
    from iapas.errors import SettingsError
    from iapas.outputs.run_report import write_run_report

    with pytest.raises(SettingsError, match="summary.json"):
        write_run_report(tmp_path)


def test_rewriting_a_report_drops_pictures_it_no_longer_uses(tmp_path: Path) -> None:
    items = make_dataset(tmp_path / "data", categories=("tile",), n_good=1, n_bad=2)
    ev = make_eval_folder(tmp_path / "ev", items)
    write_evaluation_report(ev)
    stale = ev / ASSETS / "old_category_pr.png"
    stale.write_bytes((ev / ASSETS / "tile_pr.png").read_bytes())
    page = write_evaluation_report(ev, overlays=False)
    assert not stale.exists()
    assert not list((ev / ASSETS / "overlays").rglob("*.png"))  # overlays=False: the old ones are gone
    assert all((ev / src).is_file() for src in _parse(page).imgs)
