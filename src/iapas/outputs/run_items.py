"""One image in, all its outputs written, its summary item out; and the whole-run files at the end.

Why one module: `run`/`segment` (local loop) and the Ray engine must write the very same files and
decide the very same verdicts, so both call `process_one` per image and `finalize_run` once.

Per image (see outputs/writer.py): the score map (NAME.npz by default, `--maps`), NAME_mask.png, NAME_overlay.png (colours anchored at the
decision threshold), the report thumbnail, NAME.json with the verdict. Per run: summary.json (every
input, its verdict, the threshold), results.csv, report.html and, with `--export coco`, annotations.json.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import label

from iapas.context import Context
from iapas.errors import EXIT_NOTHING_DONE, EXIT_SOME_FAILED, InputError
from iapas.io.atomic import atomic_write_text
from iapas.io.images import load_image, load_mask
from iapas.io.scoremaps import DEFAULT_MAPS
from iapas.outputs import run_report  # called through the module: tests replace write_run_report
from iapas.outputs.coco import write_coco
from iapas.outputs.writer import RunSummary, write_prediction
from iapas.types import Prediction
from iapas.verdict import decide, decision_threshold, display_top, settle

EXIT_DEFECT_FOUND = 5  # only with --fail-on-defect, and only when every input was processed
RESULTS_COLUMNS = ("path", "verdict", "image_score", "largest_region_area", "top_phrase", "name", "status", "error",
                   "threshold", "threshold_rule")
EXPORT_FORMATS = ("coco",)


def largest_region_area(mask: np.ndarray) -> int:
    """Pixels of the largest connected region (8-connected) of a defect mask, 0 when empty.

    Args:
        mask: (H, W) bool mask.
    Returns:
        The area in pixels.
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return 0
    labels, n = label(m, structure=np.ones((3, 3), dtype=int))
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0


def top_phrase(pred: Prediction) -> str:
    """The phrase of the highest-scoring kept box ('' when nothing was kept)."""
    return str(pred.boxes.phrases[int(np.argmax(pred.boxes.scores))]) if len(pred.boxes) else ""


def verdict_fields(pred: Prediction, context: Context) -> dict[str, Any]:
    """What an inspector acts on, stored in NAME.json and repeated in summary.json and results.csv."""
    v = decide(pred, context)
    return {**v.to_json(), "largest_region_area": largest_region_area(pred.mask), "top_phrase": top_phrase(pred)}


def process_one(pipeline: Any, context: Context, path: Path, out: Path, name: str, digest: str,
                maps: str = DEFAULT_MAPS) -> dict[str, Any]:
    """Load, predict and write every per-image output of `path` under OUT/NAME* (the score map in the
    `maps` format); return its summary item.

    Raises InputError for a problem of this input (unreadable, or its outputs cannot be written).
    """
    loaded = load_image(path)
    pred = pipeline.predict_one(loaded, context)
    pred = settle(pred, decide(pred, context))  # one decision: masks, regions and COCO follow the verdict
    fields = verdict_fields(pred, context)
    threshold = decision_threshold(context)
    try:
        write_prediction(out, name, loaded.rgb, pred, digest, source=path, original_size=loaded.original_size,
                         scale=(threshold, display_top(context, threshold)), extra=fields, maps=maps)
    except OSError as exc:  # disk full, folder not writable: not the input's fault, but say so per image
        raise InputError(path, f"cannot write its outputs to {out} ({exc.strerror or exc})") from None
    return {**fields, "notes": pred.notes}


def cached_item(out: Path, name: str, context: Context) -> dict[str, Any]:
    """The summary item of an image finished by an earlier run (verdict recomputed if the JSON predates it)."""
    try:
        meta = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    score = float(meta.get("image_score") or 0.0)
    threshold = decision_threshold(context)
    item = {"verdict": meta.get("verdict") or ("defect" if score >= threshold else "ok"),
            "image_score": round(score, 6), "threshold": round(threshold, 6)}
    area = meta.get("largest_region_area")
    if area is None:
        try:
            area = largest_region_area(load_mask(out / f"{name}_mask.png"))
        except Exception:  # noqa: BLE001 - a missing mask only costs the area figure
            area = None
    phrases = sorted(meta.get("boxes") or [], key=lambda b: -float(b.get("score", 0)))
    item.update({"largest_region_area": area, "top_phrase": meta.get("top_phrase", phrases[0]["phrase"] if phrases else ""),
                 "notes": meta.get("notes", [])})
    return item


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(text: object) -> str:
    """A text cell that a spreadsheet shows as text: one starting with = + - @ (or a tab / carriage return) would
    be run as a formula (`=HYPERLINK(...)` in a file name), so it gets a leading single quote, as spreadsheets
    expect for literal text."""
    value = "" if text is None else str(text)
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def results_csv(summary: RunSummary) -> str:
    """One row per input, in input order: the verdict table a line system or a spreadsheet reads (text cells
    neutralised against formula injection, `cell`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RESULTS_COLUMNS)
    for item in summary.items.values():
        ok = item.get("status") == "ok"
        score = item.get("image_score")
        writer.writerow([
            cell(item.get("path", "")), item.get("verdict", "") if ok else "",
            f"{float(score):.6f}" if ok and score is not None else "",
            item.get("largest_region_area", "") if ok and item.get("largest_region_area") is not None else "",
            cell(item.get("top_phrase", "")) if ok else "", cell(item.get("name") or ""), item.get("status", ""),
            cell(item.get("error", "")),
            f"{float(item['threshold']):.6f}" if ok and item.get("threshold") is not None else "",
            cell(summary.threshold_rule or "") if ok else "",
        ])
    return buf.getvalue()


@dataclass
class RunFiles:
    """Paths of the whole-run files `finalize_run` wrote."""

    summary: Path
    results: Path
    report: Path | None
    annotations: Path | None


def finalize_run(out: Path, summary: RunSummary, context: Context, export: Sequence[str] = (),
                 report: bool = True) -> RunFiles:
    """Write summary.json (with the threshold), results.csv, report.html and the requested exports.

    Called once after the last image (also after an interruption, so the files describe what was done).
    """
    summary.threshold = decision_threshold(context)
    summary_path = summary.save()
    results = atomic_write_text(out / "results.csv", results_csv(summary))
    page = run_report.write_run_report(out) if report else None
    annotations = None
    if "coco" in export:
        annotations = write_coco(out, summary)
    return RunFiles(summary_path, results, page, annotations)


def exit_code(summary: RunSummary, fail_on_defect: bool = False) -> int:
    """Processing decides the status (4 none processed, 3 some failed, 0 all); `fail_on_defect` turns 0 into 5
    when any image is a defect."""
    counts = summary.counts()
    n_ok, n_failed = counts.get("ok", 0), counts.get("failed", 0)
    if n_failed and not n_ok:
        return EXIT_NOTHING_DONE
    if n_failed:
        return EXIT_SOME_FAILED
    if fail_on_defect and summary.verdicts()["defect"]:
        return EXIT_DEFECT_FOUND
    return 0
