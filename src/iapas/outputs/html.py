"""The HTML skeleton shared by report.html and compare.html: inline CSS, no network resources.

Pages must open from a file share or an e-mail attachment folder, so nothing is fetched: styles are
inline, pictures are relative paths next to the page, and the only script is a few inline lines that
record on <body> how many pictures loaded (data-images-loaded / data-images-broken / data-images-pending:
lazy pictures not yet scrolled to) for checks; `iapasCountImages()` recounts.
"""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any
from datetime import datetime, timezone

CSS = """
:root { --ink:#1d2329; --muted:#5f6b76; --line:#d8dee4; --accent:#1f5fbf; --bg:#f5f7f9; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color:var(--ink);
       background:var(--bg); }
header.top { background:#1c2026; color:#eef1f4; padding:18px 28px 14px; }
header.top h1 { margin:0 0 6px; font-size:22px; font-weight:600; }
header.top .facts { display:flex; flex-wrap:wrap; gap:8px 10px; }
.pill { background:#2f3640; border:1px solid #444d58; border-radius:12px; padding:2px 10px; font-size:12.5px; }
.pill b { color:#9fc3ff; font-weight:600; }
nav { background:#fff; border-bottom:1px solid var(--line); padding:8px 28px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:14px; }
main { padding:8px 28px 40px; max-width:1500px; }
section.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:14px 18px; margin:16px 0; }
h2 { font-size:18px; margin:2px 0 10px; }
h3 { font-size:15px; margin:16px 0 8px; color:#2b3137; }
p.note, .muted { color:var(--muted); font-size:12.5px; }
table.metrics { border-collapse:collapse; font-variant-numeric:tabular-nums; font-size:13px; margin:6px 0; }
table.metrics caption { caption-side:top; text-align:left; font-weight:600; padding:4px 0 8px; }
table.metrics th, table.metrics td { border-bottom:1px solid var(--line); padding:5px 10px; }
table.metrics th { background:#eef2f6; text-align:center; font-weight:600; }
table.metrics td.num { text-align:right; }
table.metrics td.name { text-align:left; font-weight:500; }
table.metrics tr.mean td { font-weight:700; border-top:2px solid #9aa5b1; background:#f8fafc; }
table.metrics tbody tr:nth-child(even):not(.mean) td { background:#fafbfc; }
.grid { display:flex; flex-wrap:wrap; gap:12px; align-items:flex-start; }
figure { margin:0; }
figure img { display:block; max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px; background:#fff; }
figure figcaption { font-size:12px; color:var(--muted); margin-top:4px; overflow-wrap:anywhere; }
figure.plot { width:372px; }
figure.plot img { width:372px; }
figure.thumb { max-width:276px; }
figure.thumb img { max-width:100%; }
figure.panel img { max-width:100%; }
figure.defect { width:480px; }
figure.defect img { width:100%; }
figure.tile { width:170px; }
figure.tile img { width:170px; height:auto; min-height:60px; }
.pager { margin:10px 0; font-size:13px; }
.pager a, .pager b { display:inline-block; margin:0 6px 4px 0; padding:1px 7px; border:1px solid var(--line); border-radius:4px; }
.pager b { background:#eef2f6; }
dl.context { display:grid; grid-template-columns: 170px 1fr; gap:4px 12px; margin:4px 0; font-size:13px; }
dl.context dt { color:var(--muted); }
dl.context dd { margin:0; }
code.word { background:#eef2f6; border:1px solid var(--line); border-radius:4px; padding:0 5px; margin:0 3px 3px 0;
            display:inline-block; font-size:12.5px; }
.warn { color:#a61e4d; }
details { margin:14px 0 4px; }
details summary { cursor:pointer; color:var(--accent); font-weight:600; }
table.metrics a { color:var(--accent); text-decoration:none; }
footer { color:var(--muted); font-size:12px; padding:0 28px 28px; }
"""

LOAD_CHECK = """
function iapasCountImages() {
  var ok = 0, broken = 0, pending = 0;
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    if (!im.complete) { pending++; } else if (im.naturalWidth > 0) { ok++; } else { broken++; }
  }
  document.body.setAttribute('data-images-loaded', String(ok));
  document.body.setAttribute('data-images-broken', String(broken));
  document.body.setAttribute('data-images-pending', String(pending));
}
window.addEventListener('load', iapasCountImages);
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def pct(value: object) -> str:
    """Fraction -> percentage with two decimals; missing or undefined values as an em dash."""
    if value is None or isinstance(value, bool):
        return "\u2014"
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "\u2014"
    return "\u2014" if math.isnan(v) else f"{100.0 * v:.2f}"


def page(title: str, facts: Sequence[tuple[str, str]], nav: Sequence[tuple[str, str]], body: str) -> str:
    """A whole HTML document: dark header with facts as pills, a nav bar, the body sections."""
    pills = "".join(f'<span class="pill">{esc(k)}: <b>{esc(v)}</b></span>' for k, v in facts)
    links = "".join(f'<a href="#{esc(anchor)}">{esc(text)}</a>' for anchor, text in nav)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head>\n<body>\n"
        f"<header class=\"top\"><h1>{esc(title)}</h1><div class=\"facts\">{pills}</div></header>\n"
        + (f"<nav>{links}</nav>\n" if links else "")
        + f"<main>\n{body}\n</main>\n<footer>Generated by iapas on {stamp}. All pictures are files next to this page "
        "(relative paths); nothing is loaded from the network.</footer>\n"
        f"<script>{LOAD_CHECK}</script>\n</body></html>\n"
    )


def table(caption: str, header: Sequence[str], rows: Iterable[tuple[str, Sequence[str], bool]],
          numeric_from: int = 1) -> str:
    """A metrics table; rows are (css class, cells, _) with cells already formatted."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for cls, cells, _ in rows:
        tds = "".join(
            f'<td class="{"num" if i >= numeric_from else "name"}">{esc(c)}</td>' for i, c in enumerate(cells)
        )
        body.append(f'<tr class="{esc(cls)}">{tds}</tr>')
    return (f'<table class="metrics"><caption>{esc(caption)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def figure(src: str, caption: str, kind: str = "plot", alt: str | None = None, lazy: bool = False,
           href: str | None = None) -> str:
    """A picture with its caption; `lazy` defers loading until scrolled near (long run reports)."""
    img = f'<img src="{esc(src)}" alt="{esc(alt or caption)}"' + (' loading="lazy"' if lazy else "") + ">"
    if href:
        img = f'<a href="{esc(href)}">{img}</a>'
    return f'<figure class="{esc(kind)}">{img}<figcaption>{esc(caption)}</figcaption></figure>'


def context_block(ctx: dict[str, Any] | None, profile: str) -> str:
    """Stage 1 context as text: tags, object tag, LLM words, final prompt, models, warnings."""
    if ctx is None:
        return '<h3>Stage 1 context</h3><p class="note">No context file saved.</p>'

    def words(key: str) -> str:
        vals = ctx.get(key) or []
        return "".join(f'<code class="word">{esc(v)}</code>' for v in vals) or '<span class="muted">none</span>'

    rows = [("Tags", words("tags")), ("Removed tags", words("removed_tags")),
            ("Object tag", esc(ctx.get("object_tag") or "none")), ("LLM words", words("defect_words")),
            ("Final prompt", words("final_prompt"))]
    if ctx.get("llm_raw_answer"):
        rows.append(("LLM answer", f"<q>{esc(ctx['llm_raw_answer'])}</q>"))
    if ctx.get("normal_images"):
        rows.append(("Normal images", f"{len(ctx['normal_images'])} sampled with seed {esc(ctx.get('seed', ''))}"))
    models = ctx.get("models") or {}
    if models:
        rows.append(("Models", ", ".join(f"{esc(k)}: {esc((v or {}).get('id'))}" for k, v in models.items())))
    for w in ctx.get("warnings") or []:
        rows.append(("Warning", f'<span class="warn">{esc(w)}</span>'))
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return (f'<h3>Stage 1 context (profile {esc(ctx.get("profile", profile))})</h3>'
            f'<dl class="context">{body}</dl>')
