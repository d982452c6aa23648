"""`report.html` of a `run` / `segment` folder (and of the demo): what was found, where, and why.

No ground truth here, so the page ranks images by image score and shows their overlays (already written
per image by the run), the words that found each region, the Stage 1 context, and every failure.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from iapas.errors import SettingsError
from iapas.io.atomic import atomic_write_bytes, atomic_write_text
from iapas.outputs import html as h
from iapas.outputs.plots import histogram_png

GALLERY = 12  # overlays shown as pictures; the rest are linked from the table


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _items(run_dir: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-image JSON of every image the summary lists as done, with its overlay file if present."""
    out = []
    for item in summary.get("inputs") or []:
        if item.get("status") != "ok" or not item.get("name"):
            continue
        meta = _read_json(run_dir / f"{item['name']}.json")
        if meta is None:
            continue
        overlay = (meta.get("files") or {}).get("overlay") or f"{item['name']}_overlay.png"
        meta["_overlay"] = overlay if (run_dir / overlay).is_file() else None
        meta["_source"] = item.get("path", meta.get("path", ""))
        out.append(meta)
    return sorted(out, key=lambda m: -float(m.get("image_score", 0.0)))


def _found(meta: dict[str, Any]) -> str:
    boxes = meta.get("boxes") or []
    kept = ", ".join(f"{b.get('phrase', '')} {float(b.get('score', 0)):.2f}" for b in boxes) or "\u2014"
    removed = len(meta.get("removed_boxes") or [])
    return kept + (f" (+{removed} removed by size filter)" if removed else "")


def write_run_report(run_dir: Path, title: str | None = None) -> Path:
    """Write RUN/report.html from summary.json and the per-image files; return its path."""
    run_dir = Path(run_dir)
    summary = _read_json(run_dir / "summary.json")
    if summary is None:
        raise SettingsError(f"{run_dir} has no readable summary.json (is it an `iapas run` output folder?)")
    profile = str(summary.get("profile", "unknown"))
    items = _items(run_dir, summary)
    failures = summary.get("failures") or []
    ctx_path = summary.get("context")
    ctx = _read_json(Path(ctx_path)) if ctx_path else None
    if ctx is None and (run_dir / "context.json").is_file():
        ctx = _read_json(run_dir / "context.json")

    parts = ['<section class="card" id="found"><h2>What was found</h2>']
    gallery = [m for m in items if m["_overlay"]][:GALLERY]
    if gallery:
        parts.append('<p class="note">Highest image scores first. Magenta boxes: kept regions with the phrase that '
                     "found them; dashed grey: removed by the size filter; white dotted: the object.</p>")
        parts.append('<div class="grid">' + "".join(
            h.figure(m["_overlay"], f"{Path(m['_source']).name}: image score {float(m.get('image_score', 0)):.3f}; "
                     f"{_found(m)}", kind="thumb") for m in gallery) + "</div>")
    else:
        parts.append('<p class="note">No overlays in this folder.</p>')
    scores = np.array([float(m.get("image_score", 0.0)) for m in items])
    if scores.size:
        atomic_write_bytes(run_dir / "report_assets" / "image_scores.png", histogram_png(
            scores, np.zeros(0), "image scores of this run", "image score", names=("images", "")))
        parts.append(h.figure("report_assets/image_scores.png", "Distribution of image scores.", alt="image scores"))
    parts.append("</section>")

    rows = []
    for i, m in enumerate(items):
        name = Path(m["_source"]).name
        link = f'<a href="{h.esc(m["_overlay"])}">{h.esc(name)}</a>' if m["_overlay"] else h.esc(name)
        notes = "; ".join(str(n) for n in m.get("notes") or [])
        rows.append(f'<tr><td class="num">{i + 1}</td><td class="name">{link}</td>'
                    f'<td class="num">{float(m.get("image_score", 0)):.4f}</td><td class="name">{h.esc(_found(m))}</td>'
                    f'<td class="name">{h.esc(notes)}</td></tr>')
    head = "".join(f"<th>{t}</th>" for t in ("Rank", "Image (overlay)", "Image score", "Regions (phrase score)", "Notes"))
    parts.append(f'<section class="card" id="images"><h2>All images</h2><table class="metrics">'
                 f"<caption>{len(items)} processed images, profile: {h.esc(profile)}</caption>"
                 f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>")
    parts.append('<section class="card" id="context">' + h.context_block(ctx, profile) + "</section>")
    if failures:
        lis = "".join(f"<li><code>{h.esc(f.get('path', ''))}</code>: {h.esc(f.get('error', ''))}</li>" for f in failures)
        parts.append(f'<section class="card" id="failures"><h2 class="warn">{len(failures)} failed</h2>'
                     f"<ul>{lis}</ul></section>")
    facts = [("profile", profile), ("processed", str(len(items))), ("failed", str(len(failures)))]
    nav = [("found", "Found"), ("images", "All images"), ("context", "Stage 1 context")]
    if failures:
        nav.append(("failures", "Failures"))
    text = h.page(title or f"iapas run report ({profile} profile)", facts, nav, "\n".join(parts))
    return atomic_write_text(run_dir / "report.html", text)
