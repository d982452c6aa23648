"""`report.html` of an evaluation folder: the numbers, the curves, and the pictures behind them.

A reviewer should see from one page what the run was (dataset, profile, protocol), how well it did (the
metrics table, PR curves with the F1-max point), why (the Stage 1 context: tags, object tag, LLM words,
final prompt) and where it goes wrong (worst false positives, misses). Pictures are PNG files in
`report_assets/` referenced by relative paths, so the folder can be zipped or copied as a whole.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iapas.errors import InputError
from iapas.evaluation.protocols import paper_maps
from iapas.evaluation.records import EvalRecord
from iapas.io.atomic import atomic_write_bytes, atomic_write_text
from iapas.io.images import load_image
from iapas.outputs import drawing as d
from iapas.outputs import html as h
from iapas.outputs.overlay import render_overlay
from iapas.outputs.panels import PanelRow, render_panel
from iapas.outputs.plots import PRCurve, histogram_png, pr_curve, pr_curve_png
from iapas.outputs.sources import EvalFolder, prediction_from_json, source_key

ASSETS = "report_assets"
METRICS = [
    ("pixel_ap", "Pixel AP"), ("pixel_f1_max", "Pixel F1-max"), ("pixel_auroc", "Pixel AUROC"),
    ("pixel_aupro", "Pixel AUPRO"), ("image_ap", "Image AP"), ("image_auroc", "Image AUROC"),
    ("image_f1_max", "Image F1-max"),
]
# Paper Table 1 (pixel AP, pixel F1-max): the reference a reader compares against.
PAPER_TABLE1 = {
    "mvtec": (0.3143, 0.4013), "mpdd": (0.1338, 0.2401), "btad": (0.1697, 0.2562), "ksdd1": (0.1391, 0.2263),
    "mtd": (0.2777, 0.4163), "dtd-synthetic": (0.4923, 0.6033), "dagm2007": (0.2403, 0.3468),
}
WORST_K = 4
THUMB_BOX = (210, 280)  # worst-case thumbnails fit in this box (width, height) before the colour bar
DISPLAY_SIDE = 480  # images are kept at most this big in memory for panels and thumbnails


def _slug(text: str) -> str:
    return re.sub(r"[^\w\-]+", "_", text).strip("_") or "x"


@dataclass
class _Shown:
    """What one category's section draws from: the records under the protocol, plus the curve."""

    records: list[EvalRecord]
    view: list[tuple[np.ndarray, np.ndarray]]
    curve: PRCurve | None


def protocol_view(records: list[EvalRecord], protocol: str, dataset: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(score map, gt) pairs as the protocol scores them, with the evaluation harness's own rules.

    The harness already evaluated only the protocol's selection, so every record is shown; under
    `paper` the maps get the official normalisation (per map, then over the category).

    Args:
        records: the category's evaluation records.
        protocol: "standard" or "paper".
        dataset: the dataset's name.
    Returns:
        One ((H, W) float score map, (H, W) bool mask) pair per record.
    """
    paper = protocol == "paper" and len(records) > 0
    maps = np.array([r.score_map for r in records], dtype=np.float64 if paper else np.float32)  # a copy
    if paper:
        # records without a raw range already hold the official per-image maps (float64)
        official = all(r.map_range is None for r in records)
        ranges = None if official else np.array([r.map_range or (float(r.score_map.min()), float(r.score_map.max()))
                                                 for r in records])
        paper_maps(maps, ranges)
    return [(m, np.asarray(r.gt_mask, dtype=bool)) for m, r in zip(maps, records)]


def _curve(view: list[tuple[np.ndarray, np.ndarray]]) -> PRCurve | None:
    if not view:
        return None
    try:
        return pr_curve(np.concatenate([s.ravel() for s, _ in view]), np.concatenate([g.ravel() for _, g in view]))
    except ValueError:
        return None


class _Images:
    """Source images loaded once and kept small; a missing file becomes a placeholder, not a crash."""

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray | None] = {}

    def get(self, path: str) -> np.ndarray | None:
        key = source_key(path)
        if key not in self._cache:
            try:
                rgb = load_image(path).rgb
                size = d.fit_size(rgb.shape[1], rgb.shape[0], min_side=1, max_side=DISPLAY_SIDE)
                self._cache[key] = d.resize_rgb(rgb, size)
            except InputError:
                self._cache[key] = None
        return self._cache[key]


def choose_panel_records(records: list[EvalRecord], n: int) -> list[EvalRecord]:
    """Up to n images: anomalous ones taken round-robin over defect types, then one normal image."""
    if n <= 0:
        return []
    normal = [r for r in records if r.label == 0]
    by_type: dict[str, list[EvalRecord]] = {}
    for r in records:
        if r.label == 1:
            by_type.setdefault(r.defect_type, []).append(r)
    n_anom = n - 1 if normal and n > 1 else n
    chosen: list[EvalRecord] = []
    queues = [list(v) for _, v in sorted(by_type.items())]
    while len(chosen) < n_anom and any(queues):
        for q in queues:
            if q and len(chosen) < n_anom:
                chosen.append(q.pop(0))
    if normal and len(chosen) < n:
        chosen.append(max(normal, key=lambda r: r.image_score))  # the most suspicious normal image
    return chosen


class _Writer:
    """Builds the page section by section, writing each picture to the assets folder as it goes."""

    def __init__(self, main: EvalFolder, others: list[EvalFolder], max_panel_rows: int, overlays: bool = True) -> None:
        self.main, self.others, self.rows, self.overlays = main, others, max_panel_rows, overlays
        self.assets = main.root / ASSETS
        self.images = _Images()
        self.labels = self._labels()
        self.written: set[str] = set()

    def _labels(self) -> list[str]:
        folders = [self.main, *self.others]
        labels = [f.profile for f in folders]
        if len(set(labels)) < len(labels):
            labels = [f.label for f in folders]
        return labels

    def asset(self, name: str, data: bytes) -> str:
        atomic_write_bytes(self.assets / name, data)
        self.written.add(name)
        return f"{ASSETS}/{name}"

    def remove_stale_assets(self) -> None:
        """Pictures an earlier report wrote but this one does not use (the assets folder is the report's own)."""
        for p in self.assets.rglob("*.png"):
            if p.relative_to(self.assets).as_posix() not in self.written:
                p.unlink(missing_ok=True)

    # ---- summary -------------------------------------------------------------------------------
    def summary(self) -> str:
        m = self.main.metrics
        cats = m.get("categories") or {}
        std = m.get("std") or {}
        std_cats = std.get("categories") or {}

        def cell(vals: dict, spread: dict, key: str) -> str:
            text = h.pct(vals.get(key))
            return f"{text} \u00b1 {h.pct(spread[key])}" if spread.get(key) is not None and text != "\u2014" else text

        rows = []
        for name, vals in cats.items():
            rows.append(("", [name, *(cell(vals, std_cats.get(name) or {}, k) for k, _ in METRICS),
                              str(vals.get("n_images", "")), str(vals.get("n_anomalous", ""))], False))
        mean = m.get("mean") or {}
        if mean:
            rows.append(("mean", ["Mean", *(cell(mean, std.get("mean") or {}, k) for k, _ in METRICS),
                                  str(sum(int(v.get("n_images", 0) or 0) for v in cats.values())),
                                  str(sum(int(v.get("n_anomalous", 0) or 0) for v in cats.values()))], False))
        caption = (f"Metrics (%), protocol: {self.main.protocol}, profile: {self.main.profile}, "
                   f"dataset: {self.main.dataset}, seeds: {', '.join(map(str, self.main.seeds))}"
                   + (" (mean \u00b1 std over seeds)" if std else ""))
        parts = ['<section class="card" id="summary"><h2>Summary</h2>',
                 h.table(caption, ["Category", *(t for _, t in METRICS), "Images", "Anomalous"], rows)]
        ref = PAPER_TABLE1.get(self.main.dataset)
        if ref:
            parts.append(f'<p class="note">Paper Table 1 on {h.esc(self.main.dataset)}: pixel AP {100 * ref[0]:.2f}%, '
                         f"pixel F1-max {100 * ref[1]:.2f}% (paper profile with GPU models, paper protocol). "
                         f"These numbers: profile {h.esc(self.main.profile)}, protocol {h.esc(self.main.protocol)}.</p>")
        if self.main.protocol == "paper":
            parts.append('<p class="note">Paper protocol (the official code): each map min-max normalised on its own, '
                         "normal test images skipped except on MVTec-AD, F1-max over 100 fixed thresholds. Not "
                         "comparable with the standard protocol.</p>")
        ips = m.get("images_per_second")
        if isinstance(ips, (int, float)):
            parts.append(f'<p class="note">Speed: {ips:.2f} images/s.</p>')
        if self.others:
            parts.append(self._comparison_table())
        for note in dict.fromkeys([*self.main.notes, *(str(n) for n in m.get("notes") or [])]):
            parts.append(f'<p class="note warn">{h.esc(note)}</p>')
        if m.get("profile_note"):
            parts.append(f'<p class="note">{h.esc(m["profile_note"])}</p>')
        failures = m.get("failures") or []
        if failures:
            items = "".join(f"<li><code>{h.esc(f.get('path', ''))}</code>: {h.esc(f.get('error', ''))}</li>"
                            for f in failures[:50])
            more = f"<li>... and {len(failures) - 50} more (see metrics.json)</li>" if len(failures) > 50 else ""
            parts.append(f'<h3 class="warn">{len(failures)} image(s) failed</h3><ul>{items}{more}</ul>')
        parts.append("</section>")
        return "".join(parts)

    def _comparison_table(self) -> str:
        folders = [self.main, *self.others]
        protocols = {f.protocol for f in folders}
        rows = []
        for label, f in zip(self.labels, folders):
            mean = f.metrics.get("mean") or {}
            rows.append(("", [label, f.profile, f.protocol, f.dataset, *(h.pct(mean.get(k)) for k, _ in METRICS)],
                         False))
        caption = f"Compared runs, mean over categories (%), protocol: {', '.join(sorted(protocols))}"
        note = ("" if len(protocols) == 1 else
                '<p class="note warn">These runs used different protocols; their numbers are not comparable.</p>')
        return "<h3>Compared runs</h3>" + h.table(
            caption, ["Run", "Profile", "Protocol", "Dataset", *(t for _, t in METRICS)], rows, numeric_from=4) + note

    # ---- per category --------------------------------------------------------------------------
    def category(self, cat: str) -> str:
        main = self._shown(self.main, cat)
        n_img = len(main.records)
        n_anom = sum(r.label for r in main.records)
        seed = self.main.seeds[0]
        out = [f'<section class="card" id="cat-{h.esc(_slug(cat))}"><h2>{h.esc(cat)}</h2>',
               f'<p class="muted">{n_img} cached images ({n_anom} anomalous), seed {seed}, '
               f"protocol {h.esc(self.main.protocol)}, profile {h.esc(self.main.profile)}.</p>"]
        if not main.records:
            out.append('<p class="warn">No cached records for this category; rerun `iapas evaluate` to fill the '
                       "cache.</p></section>")
            return "".join(out)
        out.append('<div class="grid">' + self._plots(cat, main) + "</div>")
        out.append(self._context(cat))
        out.append(self._panel(cat, main))
        out.append(self._worst(cat, main))
        if self.overlays:
            out.append(self._all_images(cat, main))
        out.append("</section>")
        return "".join(out)

    def _all_images(self, cat: str, main: _Shown) -> str:
        """Every evaluated image, highest score first, each linked to its overlay (a link, not an <img>,
        so a large dataset does not load thousands of pictures at once)."""
        vrange = d.display_range([r.score_map for r in main.records])
        thr = main.curve.f1_threshold if main.curve and self.main.protocol == "standard" else None
        rows = []
        for i, r in enumerate(sorted(main.records, key=lambda r: -r.image_score)):
            rel = f"overlays/{_slug(cat)}/{i:04d}_{_slug(Path(r.image_path).stem)}.png"
            src = self._overlay(r, vrange, thr, rel)
            peak = f"{float(r.score_map[r.gt_mask].max()):.3f}" if r.gt_mask.any() else ""
            rows.append(f'<tr><td class="num">{i + 1}</td><td class="name"><a href="{h.esc(src)}">'
                        f"{h.esc(r.defect_type)}/{h.esc(Path(r.image_path).name)}</a></td>"
                        f'<td class="name">{"anomalous" if r.label else "normal"}</td>'
                        f'<td class="num">{r.image_score:.4f}</td><td class="num">{peak}</td></tr>')
        head = "".join(f"<th>{t}</th>" for t in ("Rank", "Image (overlay)", "Label", "Image score", "Peak in defect"))
        caption = f"All {len(rows)} images of {cat}, highest image score first (protocol: {self.main.protocol})"
        return (f"<details><summary>All {len(rows)} images with their overlays</summary>"
                f'<table class="metrics"><caption>{h.esc(caption)}</caption><thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table></details>")

    def _overlay(self, rec: EvalRecord, vrange: tuple[float, float], threshold: float | None, rel: str) -> str:
        """Overlay of one record at a moderate size; the image is loaded, drawn and dropped (not cached)."""
        try:
            rgb = load_image(rec.image_path, max_side=2 * DISPLAY_SIDE).rgb
        except InputError:
            rgb = d.placeholder((rec.score_map.shape[1] * 4, rec.score_map.shape[0] * 4), "image not found")
        rgb = d.resize_rgb(rgb, d.fit_size(rgb.shape[1], rgb.shape[0], min_side=384, max_side=640))
        pred = prediction_from_json(rec.prediction, rec.score_map, (rgb.shape[1], rgb.shape[0]), self.main.profile)
        label = "anomalous" if rec.label else "normal"
        title = f"{rec.defect_type}/{Path(rec.image_path).name}  |  {label}  |  image score {rec.image_score:.3f}"
        img = render_overlay(rgb, pred, threshold, scale=d.anchored_scale(threshold, vrange[1]), gt_mask=rec.gt_mask,
                             vrange=vrange, title=title)
        return self.asset(rel, d.png_bytes(img))

    def _shown(self, folder: EvalFolder, cat: str) -> _Shown:
        recs = folder.records(cat)
        view = protocol_view(recs, folder.protocol, folder.dataset)
        return _Shown(recs, view, _curve(view))

    def _plots(self, cat: str, main: _Shown) -> str:
        slug = _slug(cat)
        figs = []
        series: dict[str, PRCurve] = {}
        if main.curve:
            series[self.labels[0]] = main.curve
        for label, other in zip(self.labels[1:], self.others):
            if cat in other.categories:
                c = self._shown(other, cat).curve
                if c:
                    series[label] = c
        proto = self.main.protocol
        if series:
            src = self.asset(f"{slug}_pr.png", pr_curve_png(series, f"{cat}: pixel precision-recall ({proto} protocol)"))
            figs.append(h.figure(src, "Pixel-level precision-recall; the star marks the F1-max point.", alt=f"{cat} PR curve"))
        else:
            figs.append('<p class="note">No pixel PR curve: the evaluated images hold no defect pixels or no normal pixels.</p>')
        normal_px = np.concatenate([s[~g] for s, g in main.view]) if main.view else np.zeros(0)
        anom_px = np.concatenate([s[g] for s, g in main.view]) if main.view else np.zeros(0)
        if normal_px.size or anom_px.size:
            thr = main.curve.f1_threshold if main.curve else None
            src = self.asset(f"{slug}_pixel_hist.png", histogram_png(
                normal_px, anom_px, f"{cat}: pixel scores ({proto} protocol)", "pixel score", thr,
                names=("normal pixels", "defect pixels")))
            figs.append(h.figure(src, "Scores of normal vs defect pixels; the dashed line is the pixel F1-max threshold.",
                                 alt=f"{cat} pixel histogram"))
        normal_img = np.array([r.image_score for r in main.records if r.label == 0])
        anom_img = np.array([r.image_score for r in main.records if r.label == 1])
        point = (self.main.metrics.get("categories", {}).get(cat) or {}).get("thresholds")
        verdict = point.get("verdict") if isinstance(point, dict) else None
        src = self.asset(f"{slug}_image_hist.png", histogram_png(
            normal_img, anom_img, f"{cat}: image scores (all cached images)", "image score", verdict,
            names=("normal images", "anomalous images"), threshold_name="verdict threshold"))
        figs.append(h.figure(src, "Image scores of normal vs anomalous test images" + (
            "; the dashed line is the context's verdict threshold (" + h.esc(str(point.get("rule") or "")) + ")."
            if verdict is not None else "."), alt=f"{cat} image histogram"))
        return "".join(figs)

    def _context(self, cat: str) -> str:
        return h.context_block(self.main.context(cat), self.main.profile)

    def _panel(self, cat: str, main: _Shown) -> str:
        chosen = choose_panel_records(main.records, self.rows)
        if not chosen:
            return ""
        others = [{source_key(r.image_path): r for r in o.records(cat)} if cat in o.categories else {}
                  for o in self.others]
        rows = []
        for r in chosen:
            key = source_key(r.image_path)
            matched = [r, *(o.get(key) for o in others)]
            rows.append(PanelRow(
                label=f"{r.defect_type}/{Path(r.image_path).name}", rgb=self.images.get(r.image_path), gt=r.gt_mask,
                maps=[m.score_map if m is not None else None for m in matched],
                captions=[f"image score {m.image_score:.3f}" if m is not None else "" for m in matched]))
        panel = render_panel(rows, self.labels, cell=200 if len(self.labels) < 4 else 160)
        src = self.asset(f"{_slug(cat)}_panel.png", d.png_bytes(panel))
        return ("<h3>Comparison panel</h3>" + h.figure(
            src, "Image | ground truth | score map of each compared run (one colour scale per column).",
            kind="panel", alt=f"{cat} comparison panel"))

    def _thumb(self, cat: str, rec: EvalRecord, vrange: tuple[float, float], threshold: float | None,
               name: str, title: str) -> str:
        """Overlay of one record drawn to fit a fixed box, so thumbnails share one text size."""
        rgb = self.images.get(rec.image_path)
        if rgb is None:
            rgb = d.placeholder((rec.score_map.shape[1] * 4, rec.score_map.shape[0] * 4), "image not found")
        rgb = d.resize_rgb(rgb, d.fit_box(rgb.shape[1], rgb.shape[0], *THUMB_BOX))
        pred = prediction_from_json(rec.prediction, rec.score_map, (rgb.shape[1], rgb.shape[0]), self.main.profile)
        img = render_overlay(rgb, pred, threshold, scale=d.anchored_scale(threshold, vrange[1]), gt_mask=rec.gt_mask,
                             vrange=vrange, title=title,
                             min_side=1, max_side=max(THUMB_BOX))
        return self.asset(f"{_slug(cat)}_{name}.png", d.png_bytes(img))

    def _worst(self, cat: str, main: _Shown) -> str:
        recs = main.records
        vrange = d.display_range([r.score_map for r in recs])
        thr = main.curve.f1_threshold if main.curve and self.main.protocol == "standard" else None
        normal = [r for r in recs if r.label == 0]
        if normal:
            fps = sorted(normal, key=lambda r: -r.image_score)[:WORST_K]
            fp_why = [f"normal image, image score {r.image_score:.3f}" for r in fps]
        else:
            def off(r: EvalRecord) -> float:
                rest = r.score_map[~r.gt_mask]
                return float(rest.max()) if rest.size else float("-inf")
            fps = sorted(recs, key=lambda r: -off(r))[:WORST_K]
            fp_why = [f"peak outside the defect {off(r):.3f} (no normal images cached)" for r in fps]
        misses = sorted([r for r in recs if r.label == 1], key=lambda r: r.image_score)[:WORST_K]
        miss_why = [f"anomalous image, image score {r.image_score:.3f}, peak in defect "
                    f"{float(r.score_map[r.gt_mask].max()) if r.gt_mask.any() else float('nan'):.3f}" for r in misses]
        out = []
        legend = ('<p class="note">Green outline: ground truth. White outline: pixels at or above the pixel F1-max '
                  "threshold. Magenta boxes: kept detections; dashed grey: removed by the size filter.</p>")
        fp_title = ("Worst false positives: normal images with the highest scores" if normal else
                    "Worst false positives: highest scores outside the defects")
        miss_title = "Misses: anomalous images with the lowest scores"
        for title, items, why, tag in ((fp_title, fps, fp_why, "fp"), (miss_title, misses, miss_why, "miss")):
            if not items:
                continue
            figs = []
            for i, (r, w) in enumerate(zip(items, why)):
                src = self._thumb(cat, r, vrange, thr, f"{tag}{i}", f"{Path(r.image_path).name}  |  {r.image_score:.3f}")
                figs.append(h.figure(src, f"{r.defect_type}/{Path(r.image_path).name}: {w}", kind="thumb"))
            out.append(f"<h3>{title}</h3><div class=\"grid\">{''.join(figs)}</div>")
        return "".join(out) + (legend if out else "")


def write_evaluation_report(out_dir: Path, compare_with: list[Path] | None = None, max_panel_rows: int = 8,
                            overlays: bool = True) -> Path:
    """Write OUT/report.html (+ OUT/report_assets/*.png) for an `iapas evaluate` folder; return its path.

    `overlays` also draws one overlay per evaluated image (linked from a per-category table); turn it off
    for a quick report of a very large evaluation.
    """
    main = EvalFolder(Path(out_dir))
    others = [EvalFolder(Path(p)) for p in compare_with or []]
    w = _Writer(main, others, max_panel_rows, overlays)
    per_category = [w.category(c) for c in main.categories]  # first: reading records may add notes
    sections = [w.summary(), *per_category]
    facts = [("dataset", main.dataset), ("profile", main.profile), ("protocol", main.protocol),
             ("seeds", ", ".join(map(str, main.seeds))), ("categories", str(len(main.categories)))]
    if others:
        facts.append(("compared with", ", ".join(w.labels[1:])))
    nav = [("summary", "Summary"), *((f"cat-{_slug(c)}", c) for c in main.categories)]
    text = h.page(f"iapas evaluation report: {main.dataset} ({main.profile} profile)", facts, nav, "\n".join(sections))
    page = atomic_write_text(main.root / "report.html", text)
    w.remove_stale_assets()
    return page

