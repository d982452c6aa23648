"""metrics.csv (fractions, for machines) and metrics.md (percentages, two decimals, the paper's layout)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from iapas.evaluation.operating import OPERATING_KEYS
from iapas.evaluation.protocols import DECIDED_KEYS, METRIC_KEYS
from iapas.io.atomic import atomic_write_text

HEADERS = {
    "pixel_ap": "Pixel AP",
    "pixel_f1_max": "Pixel F1-max",
    "pixel_auroc": "Pixel AUROC",
    "pixel_aupro": "Pixel AUPRO",
    "image_ap": "Image AP",
    "image_auroc": "Image AUROC",
    "image_f1_max": "Image F1-max",
}


def _rows(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    std = metrics.get("std") or {}
    rows = [(c, r, (std.get("categories") or {}).get(c)) for c, r in metrics["categories"].items()]
    rows.append(("mean", metrics["mean"], std.get("mean")))
    return rows


def write_csv(path: Path, metrics: dict[str, Any]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    multi = bool(metrics.get("std"))
    head = ["category", *METRIC_KEYS, "n_images", "n_anomalous", *OPERATING_KEYS]
    if multi:
        head += [f"{k}_std" for k in METRIC_KEYS]
    w.writerow(["dataset", "profile", "protocol", *head])
    for name, row, std in _rows(metrics):
        vals = ["" if row.get(k) is None else f"{row[k]:.6f}" for k in METRIC_KEYS]
        line = [metrics["dataset"], metrics["profile"], metrics["protocol"], name, *vals, row["n_images"], row["n_anomalous"],
                *["" if row.get(k) is None else f"{row[k]:.6f}" for k in OPERATING_KEYS]]
        if multi:
            line += ["" if not std or std.get(k) is None else f"{std[k]:.6f}" for k in METRIC_KEYS]
        w.writerow(line)
    return atomic_write_text(path, buf.getvalue())


def _pct(v: float | None, s: float | None) -> str:
    if v is None:
        return "n/a"
    text = f"{100 * v:.2f}"
    return text + (f" ± {100 * s:.2f}" if s is not None else "")


def markdown(metrics: dict[str, Any]) -> str:
    """The table a person reads: categories and mean as rows, metrics as columns, in percent."""
    proto = metrics["protocol"]
    lines = [
        f"# {metrics['dataset']}: profile `{metrics['profile']}`, protocol `{proto}`",
        "",
        f"Profile: {metrics['profile']}. Protocol: {proto} ({metrics.get('protocol_note', '')}). "
        f"Seeds: {', '.join(map(str, metrics['seeds']))}. Evaluation size: {metrics.get('eval_size')} px. "
        "Values in percent" + (", mean ± std over seeds." if metrics.get("std") else "."),
        "",
        "| Category | " + " | ".join(HEADERS[k] for k in METRIC_KEYS) + " | Images | Anomalous |",
        "|---|" + "---:|" * (len(METRIC_KEYS) + 2),
    ]
    for name, row, std in _rows(metrics):
        cells = [_pct(row.get(k), (std or {}).get(k)) for k in METRIC_KEYS]
        label = f"**{name}**" if name == "mean" else name
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {row['n_images']} | {row['n_anomalous']} |")
    lines += operating_table(metrics)
    if metrics.get("failures"):
        lines += ["", f"{len(metrics['failures'])} image(s) failed; see metrics.json `failures`."]
    return "\n".join(lines) + "\n"


def operating_table(metrics: dict[str, Any]) -> list[str]:
    """The figures at each context's own thresholds, in percent (regions: mean count per good part)."""
    rows = _rows(metrics)
    if not any(r.get("good_flagged") is not None or r.get("image_f1") is not None for _, r, _ in rows):
        return []
    paper = metrics.get("protocol") == "paper"
    head = ["Good flagged", "Defective missed", "Image F1 (at threshold)", "Image F1-max", "Pixel F1 (masks)",
            "Pixel F1-max", "Regions per good part"] + (["Pixel AP (ok = zero map)", "Pixel F1-max (ok = zero map)"] if paper else [])
    lines = ["", "At the operating point (each context's own verdict and mask thresholds; masks of parts judged ok are "
             "empty): " + str(metrics.get("operating_point_note", "")), "",
             "| Category | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for name, row, _ in rows:
        cells = [_pct(row.get(k), None) for k in ("good_flagged", "defective_missed", "image_f1", "image_f1_max",
                                                   "pixel_f1", "pixel_f1_max")]
        reg = row.get("regions_per_good")
        cells.append("n/a" if reg is None else f"{reg:.2f}")
        if paper:
            cells += [_pct(row.get(k), None) for k in DECIDED_KEYS]
        label = f"**{name}**" if name == "mean" else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(path: Path, metrics: dict[str, Any]) -> Path:
    return atomic_write_text(path, markdown(metrics))
