"""`report.html` of a `run` / `segment` folder: what an inspector acts on, defects first.

No ground truth here. The page shows the verdict counts and the threshold, then the images judged
`defect` ranked by image score with their overlays, then the clean images as small thumbnails, then
the Stage 1 context and every failure. It stays usable for thousands of images: pictures load lazily,
and defects / clean images are split into pages (report.html holds the first of each; the others are
report_pages/defects_NNN.html and report_pages/clean_NNN.html), so no single page grows huge.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iapas.errors import SettingsError
from iapas.io.atomic import atomic_write_bytes, atomic_write_text
from iapas.outputs import html as h
from iapas.outputs.plots import histogram_png
from iapas.profiles.base import Profile
from iapas.profiles.registry import profile_class, profile_names

DEFECTS_PER_PAGE = 40
CLEAN_PER_PAGE = 200
PAGES = "report_pages"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _existing(run_dir: Path, *candidates: str | None) -> str | None:
    return next((c for c in candidates if c and (run_dir / c).is_file()), None)


def _items(run_dir: Path, summary: dict[str, Any], threshold: float | None) -> list[dict[str, Any]]:
    """Per-image JSON of every image the summary lists as done, with its overlay and thumbnail if present."""
    out = []
    for item in summary.get("inputs") or []:
        if item.get("status") != "ok" or not item.get("name"):
            continue
        meta = _read_json(run_dir / f"{item['name']}.json")
        if meta is None:
            continue
        files = meta.get("files") or {}
        meta["_overlay"] = _existing(run_dir, files.get("overlay"), f"{item['name']}_overlay.png")
        meta["_thumb"] = _existing(run_dir, files.get("thumb")) or meta["_overlay"]
        meta["_source"] = item.get("path", meta.get("path", ""))
        score = float(meta.get("image_score", 0.0))
        verdict = item.get("verdict") or meta.get("verdict")
        if verdict is None and threshold is not None:
            verdict = "defect" if score >= threshold else "ok"
        meta["_verdict"] = verdict or "ok"
        out.append(meta)
    return sorted(out, key=lambda m: -float(m.get("image_score", 0.0)))


def _found(meta: dict[str, Any]) -> str:
    boxes = meta.get("boxes") or []
    kept = ", ".join(f"{b.get('phrase', '')} {float(b.get('score', 0)):.2f}" for b in boxes[:6]) or "\u2014"
    if len(boxes) > 6:
        kept += f", +{len(boxes) - 6} more"
    removed = len(meta.get("removed_boxes") or [])
    return kept + (f" (+{removed} removed by size filter)" if removed else "")


def _caption(m: dict[str, Any], rank: int) -> str:
    area = m.get("largest_region_area")
    area_text = f"; largest region {int(area)} px" if area is not None else ""
    return (f"#{rank} {m['_source']}: {m['_verdict']}, image score {float(m.get('image_score', 0)):.3f}"
            f"{area_text}; found: {_found(m)}")


def _pages(items: list[dict[str, Any]], per_page: int) -> list[list[dict[str, Any]]]:
    return [items[i:i + per_page] for i in range(0, len(items), per_page)] or [[]]


def _page_href(kind: str, number: int, from_sub: bool) -> str:
    if number == 1:
        return ("../report.html" if from_sub else "report.html") + f"#{kind}"
    return (f"{kind}_{number:03d}.html" if from_sub else f"{PAGES}/{kind}_{number:03d}.html")


def _pager(kind: str, count: int, current: int, from_sub: bool) -> str:
    if count <= 1:
        return ""
    links = "".join(f"<b>{n}</b>" if n == current else f'<a href="{h.esc(_page_href(kind, n, from_sub))}">{n}</a>'
                    for n in range(1, count + 1))
    return f'<div class="pager">Page: {links}</div>'


def _tag_meaning(profile: str) -> str:
    """What the text on a magenta tag is, for this profile's overlays (`Profile.tag_meaning`)."""
    return (profile_class(profile) if profile in profile_names() else Profile).tag_meaning


def _defect_section(page: list[dict[str, Any]], start: int, n_pages: int, current: int, total: int,
                    threshold: float | None, prefix: str, profile: str = "") -> str:
    thr = f" at or above the threshold {threshold:.3f}" if threshold is not None else ""
    parts = [f'<section class="card" id="defects"><h2 class="warn">Defects: {total}</h2>',
             f'<p class="note">Images whose image score is{thr}, highest first. Colours start at the threshold '
             f"(yellow) and reach red well above it; magenta boxes: {h.esc(_tag_meaning(profile))}; "
             "dashed grey: removed by the size filter. Click a picture for full size.</p>"]
    parts.append(_pager("defects", n_pages, current, bool(prefix)))
    figs = []
    for i, m in enumerate(page):
        cap = _caption(m, start + i + 1)
        if m["_overlay"]:
            figs.append(h.figure(prefix + m["_overlay"], cap, kind="defect", lazy=True, href=prefix + m["_overlay"]))
        else:
            figs.append(f'<figure class="defect"><figcaption>{h.esc(cap)} (no overlay file)</figcaption></figure>')
    parts.append('<div class="grid">' + "".join(figs) + "</div>" if figs else
                 '<p class="note">No image was judged a defect.</p>')
    parts.append(_pager("defects", n_pages, current, bool(prefix)) + "</section>")
    return "".join(parts)


def _clean_section(page: list[dict[str, Any]], start: int, n_pages: int, current: int, total: int,
                   prefix: str) -> str:
    parts = [f'<section class="card" id="clean"><h2>Clean images: {total}</h2>',
             '<p class="note">Judged ok, closest to the threshold first. Click a thumbnail for its overlay.</p>',
             _pager("clean", n_pages, current, bool(prefix))]
    figs = []
    for i, m in enumerate(page):
        name = Path(str(m["_source"])).name
        cap = f"#{start + i + 1} {name} {float(m.get('image_score', 0)):.3f}"
        if m["_thumb"]:
            figs.append(h.figure(prefix + m["_thumb"], cap, kind="tile", alt=str(m["_source"]), lazy=True,
                                 href=prefix + (m["_overlay"] or m["_thumb"])))
        else:
            figs.append(f'<figure class="tile"><figcaption>{h.esc(cap)}</figcaption></figure>')
    parts.append('<div class="grid">' + "".join(figs) + "</div>" if figs else '<p class="note">None.</p>')
    parts.append(_pager("clean", n_pages, current, bool(prefix)) + "</section>")
    return "".join(parts)


def write_run_report(run_dir: Path, title: str | None = None,
                     extra: Sequence[tuple[str, str, str]] = ()) -> Path:
    """Write RUN/report.html (and RUN/report_pages/*.html when there are many images); return its path.

    `extra` = (anchor, menu text, HTML section) placed before the defects, e.g. the demo's comparison
    of verdicts with the ground truth and its evaluation.
    """
    run_dir = Path(run_dir)
    summary = _read_json(run_dir / "summary.json")
    if summary is None:
        raise SettingsError(f"{run_dir} has no readable summary.json (is it an `iapas run` output folder?)")
    profile = str(summary.get("profile", "unknown"))
    threshold = summary.get("threshold")
    threshold = float(threshold) if threshold is not None else None
    items = _items(run_dir, summary, threshold)
    defects = [m for m in items if m["_verdict"] == "defect"]
    clean = [m for m in items if m["_verdict"] != "defect"]
    failures = summary.get("failures") or []
    ctx_path = summary.get("context")
    ctx = _read_json(Path(ctx_path)) if ctx_path else None
    if ctx is None and (run_dir / "context.json").is_file():
        ctx = _read_json(run_dir / "context.json")
    title = title or f"iapas run report ({profile} profile)"
    facts = [("profile", profile), ("processed", str(len(items))), ("defect", str(len(defects))),
             ("ok", str(len(clean))), ("failed", str(len(failures))),
             ("threshold", f"{threshold:.3f}" if threshold is not None else "not recorded")]
    if summary.get("threshold_rule"):
        facts.append(("threshold rule", str(summary["threshold_rule"])))
    kind = summary.get("kind")
    if isinstance(kind, dict) and kind.get("kind"):
        facts.append(("kind", f"{kind['kind']} ({kind.get('rule', '')})"))
    d_pages, c_pages = _pages(defects, DEFECTS_PER_PAGE), _pages(clean, CLEAN_PER_PAGE)

    parts = [section for _, _, section in extra]
    parts += [_defect_section(d_pages[0], 0, len(d_pages), 1, len(defects), threshold, "", profile),
             _clean_section(c_pages[0], 0, len(c_pages), 1, len(clean), "")]
    scores = np.array([float(m.get("image_score", 0.0)) for m in items])
    if scores.size:
        atomic_write_bytes(run_dir / "report_assets" / "image_scores.png", histogram_png(
            scores, np.zeros(0), "image scores of this run", "image score", threshold, names=("images", ""),
            threshold_name="decision threshold"))
        parts.append('<section class="card" id="scores"><h2>Image scores</h2>' + h.figure(
            "report_assets/image_scores.png", "Distribution of image scores; the dashed line is the decision threshold.",
            alt="image scores") + '<p class="note">Every image with its verdict: <a href="results.csv">results.csv</a>; '
            'every input with its status: <a href="summary.json">summary.json</a>.</p></section>')
    parts.append('<section class="card" id="context">' + h.context_block(ctx, profile) + "</section>")
    if failures:
        shown = failures[:500]
        lis = "".join(f"<li><code>{h.esc(f.get('path', ''))}</code>: {h.esc(f.get('error', ''))}</li>" for f in shown)
        more = f'<p class="note">{len(failures) - len(shown)} more in summary.json.</p>' if len(failures) > len(shown) else ""
        parts.append(f'<section class="card" id="failures"><h2 class="warn">{len(failures)} failed</h2>'
                     f"<ul>{lis}</ul>{more}</section>")
    nav = [(anchor, text) for anchor, text, _ in extra]
    nav += [("defects", "Defects"), ("clean", "Clean images"), ("scores", "Scores"), ("context", "Stage 1 context")]
    if failures:
        nav.append(("failures", "Failures"))
    page = atomic_write_text(run_dir / "report.html", h.page(title, facts, nav, "\n".join(parts)))
    _write_sub_pages(run_dir, title, facts, d_pages, c_pages, len(defects), len(clean), threshold, profile)
    return page


def _write_sub_pages(run_dir: Path, title: str, facts: list[tuple[str, str]], d_pages: list[list[dict[str, Any]]],
                     c_pages: list[list[dict[str, Any]]], n_defects: int, n_clean: int, threshold: float | None,
                     profile: str = "") -> None:
    """Pages 2.. of defects and clean images; pages of an earlier, larger report are removed."""
    wanted: set[str] = set()
    for number in range(2, len(d_pages) + 1):
        body = _defect_section(d_pages[number - 1], (number - 1) * DEFECTS_PER_PAGE, len(d_pages), number, n_defects,
                               threshold, "../", profile)
        name = f"defects_{number:03d}.html"
        atomic_write_text(run_dir / PAGES / name, h.page(f"{title}: defects, page {number}", facts, [], _back() + body))
        wanted.add(name)
    for number in range(2, len(c_pages) + 1):
        body = _clean_section(c_pages[number - 1], (number - 1) * CLEAN_PER_PAGE, len(c_pages), number, n_clean, "../")
        name = f"clean_{number:03d}.html"
        atomic_write_text(run_dir / PAGES / name, h.page(f"{title}: clean images, page {number}", facts, [], _back() + body))
        wanted.add(name)
    folder = run_dir / PAGES
    if folder.is_dir():
        for old in folder.glob("*.html"):
            if old.name not in wanted:
                old.unlink(missing_ok=True)


def _back() -> str:
    return '<p class="pager"><a href="../report.html">Back to report.html</a></p>'
