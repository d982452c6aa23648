"""`iapas demo`: the tool doing real work out of the box, with no dataset, no network and no GPU.

Generates a small inspection set from real textures bundled with scikit-image (normal crops, test
crops with drawn defects and exact masks), evaluates the offline profile on it through the same
harness as `iapas evaluate --dataset folder`, then does the main job, a `run`, on one texture's mixed
folder of good and defective parts: OUT/run holds its per-image outputs, results.csv with the verdicts
and the one report, report.html, which puts each part's verdict and regions beside its ground truth,
above the evaluation of every texture.

The demo runs on DEMO_THREADS threads whatever the machine, so its figures are the same everywhere
(threaded sums in the features and the nearest-neighbour search change the last digits otherwise).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from iapas.config import PipelineConfig, build_config
from iapas.data.synthetic import TEXTURES, make_dataset
from iapas.io.atomic import atomic_write_image, atomic_write_json, atomic_write_text
from iapas.io.images import load_image, load_mask

DEMO_PROFILE = "offline"
METRIC_KEYS = ("pixel_ap", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_auroc")
DEMO_THREADS = 2  # fixed, so the figures do not depend on the machine's core count
RUN_CATEGORY = "brick"  # the texture whose mixed test folder the demo's `run` checks
DASH = "\u2014"


def demo_config(**overrides: Any) -> PipelineConfig:
    """The offline profile at its defaults for the demo's data, which are textures (the texture preset);
    the demo shows what a fresh install does on them."""
    return build_config(profile=DEMO_PROFILE, **{"kind": "texture", **overrides})


def write_overlays(eval_dir: Path, dest: Path) -> list[Path]:
    """One overlay per evaluated test image: score map, found regions (red) and ground truth (green)."""
    from iapas.evaluation.records import iter_records
    from iapas.outputs.overlay import render_overlay
    from iapas.types import Detections, Prediction
    from iapas.verdict import display_scale

    written = []
    for rec in iter_records(eval_dir):
        rgb = load_image(rec.image_path).rgb
        gt = load_mask(rec.mask_path) if rec.mask_path else None
        info = rec.prediction
        boxes = Detections.from_json(info.get("boxes", []))
        pred = Prediction(path=rec.image_path, score_map=rec.score_map, mask=rec.score_map >= 0.5, boxes=boxes,
                          image_score=rec.image_score, profile=info.get("profile", DEMO_PROFILE))
        img = render_overlay(rgb, pred, threshold=0.5, scale=display_scale(DEMO_PROFILE, 0.5), gt_mask=gt, min_side=256)
        written.append(atomic_write_image(dest / rec.category / f"{Path(rec.image_path).stem}.png", img))
    return written


def summary_markdown(per_cat: dict[str, dict[str, Any]], seconds: float, out: Path,
                     mean: dict[str, float] | None = None, threads: int = DEMO_THREADS) -> str:
    lines = [
        "# iapas demo (profile: offline)",
        "",
        "Synthetic inspection set from scikit-image textures with drawn defects (exact masks); scored by the",
        "offline profile (EfficientNet-Lite features of the normal images, nearest-neighbour distance).",
        f"Standard protocol: all test images, raw maps, exact F1-max. Values in %. Threads: {threads} (fixed).",
        "",
        "| category | pixel AP | pixel F1-max | pixel AUROC | pixel AUPRO | image AUROC | images |",
        "|---|---|---|---|---|---|---|",
    ]
    def pct(v: Any) -> str:
        return "n/a" if v is None else f"{100 * float(v):.1f}"
    for cat, m in per_cat.items():
        lines.append(f"| {cat} | " + " | ".join(pct(m.get(k)) for k in METRIC_KEYS) + f" | {m.get('n_images', '?')} |")
    if mean:
        n = sum(int(m.get("n_images", 0)) for m in per_cat.values())
        lines.append("| **mean** | " + " | ".join(f"**{pct(mean.get(k))}**" for k in METRIC_KEYS) + f" | {n} |")
    lines += ["", f"Total time: {seconds:.1f} s. Overlays: {out / 'overlays'}."]
    return "\n".join(lines) + "\n"


def run_demo(out: str | Path, textures: tuple[str, ...] = TEXTURES, n_normal: int = 10, n_test: int = 10,
             size: int = 160, report: bool = False, progress: bool = False, threads: int = DEMO_THREADS,
             run_category: str | None = RUN_CATEGORY) -> dict[str, Any]:
    """Generate the data, evaluate the offline profile per texture, `run` on one texture's test folder, write
    the outputs; return the summary.

    Args:
        report: also write one evaluation report per texture (the run's report.html already holds the
            evaluation table).
        threads: the thread budget of every step (fixed by default: same figures on every machine).
        run_category: the texture whose test folder the `run` checks (None: no run).
    """
    from iapas.evaluation.harness import EvalOptions, run_evaluation

    t0 = time.perf_counter()
    out = Path(out).expanduser().resolve()
    cats = make_dataset(out / "data", textures, n_normal=n_normal, n_test=n_test, size=(size, size))
    config = demo_config(threads=threads)
    per_cat: dict[str, dict[str, Any]] = {}
    reports: dict[str, str] = {}
    failures: list[Any] = []
    ips: list[float] = []
    for cat in cats:
        eval_dir = out / "eval" / cat.name
        metrics = run_evaluation("folder", cat.root, eval_dir, config, EvalOptions(protocol="standard", progress=progress))
        per_cat[cat.name] = metrics["categories"][cat.name]
        failures += metrics.get("failures", [])
        if metrics.get("images_per_second"):
            ips.append(float(metrics["images_per_second"]))
        write_overlays(eval_dir, out / "overlays")
        if report and (page := evaluation_report(eval_dir)) is not None:
            reports[cat.name] = page
    mean = {k: float(np.mean([m[k] for m in per_cat.values() if m.get(k) is not None]))
            for k in METRIC_KEYS if any(m.get(k) is not None for m in per_cat.values())}
    run = None
    chosen = next((c for c in cats if c.name == run_category), None)
    if chosen is not None:
        run = run_mixed_folder(chosen, out / "run", config, per_cat, mean, out / "overlays" / chosen.name)
    seconds = time.perf_counter() - t0
    summary = {
        "profile": DEMO_PROFILE,
        "protocol": "standard",
        "dataset": "synthetic textures from scikit-image (iapas.data.synthetic)",
        "data": str(out / "data"),
        "categories": per_cat,
        "mean": mean,
        "images_per_second": float(np.mean(ips)) if ips else None,
        "seconds": seconds,
        "reports": reports,
        "overlays": str(out / "overlays"),
        "threads": threads,
        "run": run,
        "failures": failures,
    }
    atomic_write_json(out / "metrics.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(per_cat, seconds, out, mean, threads))
    return summary


def evaluation_report(eval_dir: Path) -> str | None:
    """The evaluation report page of one category, or None when the report module is not installed."""
    try:
        from iapas.outputs.report import write_evaluation_report  # optional: an install may leave the HTML report module out
    except ImportError:
        return None
    return str(write_evaluation_report(eval_dir, overlays=False))


def run_mixed_folder(cat: Any, run_dir: Path, config: PipelineConfig, per_cat: dict[str, dict[str, Any]],
                     mean: dict[str, float], eval_overlays: Path) -> dict[str, Any]:
    """The main job on the category's mixed test folder, as `iapas run --normal normal/ --images test/` does
    it (the same Stage 1, per-image outputs, verdicts, results.csv and report), plus the demo's sections.

    Returns:
        run facts: folder, results.csv, report.html, verdict counts, and how many verdicts match the truth.
    """
    import json as _json

    from iapas.config import settings_digest
    from iapas.errors import InputError
    from iapas.outputs.run_items import finalize_run, process_one
    from iapas.outputs.run_report import write_run_report
    from iapas.outputs.writer import RunSummary, output_names
    from iapas.pipeline import Pipeline
    from iapas.verdict import decision_threshold

    pipeline = Pipeline(config)
    context = pipeline.fit(pipeline.select_normal(cat.root / "normal"))
    run_dir.mkdir(parents=True, exist_ok=True)
    context.save(run_dir / "context.json")
    digest = settings_digest(context.config, context.profile, context=context.model_dump_json())
    paths = sorted(cat.test)
    names = output_names(paths, [cat.root / "test"])
    summary = RunSummary(out_dir=run_dir, profile=context.profile, settings_digest=digest,
                         context=str(run_dir / "context.json"), threshold=decision_threshold(context),
                         mode=context.reference.mode)
    for path in paths:
        try:
            summary.record(path, names[path], "ok", **process_one(pipeline, context, path, run_dir, names[path], digest))
        except InputError as exc:
            summary.record(path, names[path], "failed", error=exc.reason)
    finalize_run(run_dir, summary, context)
    truth = _json.loads((cat.root / "defects.json").read_text(encoding="utf-8"))
    rows = []
    for path in paths:
        item = summary.items[str(path)]
        rows.append({"path": path, "name": names[path], "truth": truth.get(path.name, "?"),
                     "verdict": item.get("verdict"), "image_score": item.get("image_score"),
                     "top_phrase": item.get("top_phrase", ""), "eval_overlay": eval_overlays / f"{path.stem}.png"})
    agree = sum((r["truth"] != "good") == (r["verdict"] == "defect") for r in rows)
    sections = [("truth", "Verdicts vs truth", truth_section(rows, run_dir, cat.name, summary.threshold or 0.5)),
                ("evaluation", "Evaluation", evaluation_section(per_cat, mean))]
    report = write_run_report(run_dir, title=f"iapas demo: run on {cat.name} + evaluation (offline profile)",
                              extra=sections)
    return {"dir": str(run_dir), "category": cat.name, "results": str(run_dir / "results.csv"), "report": str(report),
            "verdict_counts": summary.verdicts(), "n_images": len(rows), "agree_with_truth": agree}


def truth_section(rows: list[dict[str, Any]], run_dir: Path, category: str, threshold: float) -> str:
    """One line per part: the run's overlay (verdict, regions) beside the evaluation overlay (ground truth
    outlined in green), the truth, the verdict and whether they agree."""
    import os

    from iapas.outputs import html as h

    cells = []
    for r in rows:
        ok = (r["truth"] != "good") == (r["verdict"] == "defect")
        run_pic = f"{r['name']}_overlay.png"
        eval_pic = os.path.relpath(r["eval_overlay"], run_dir)
        score = f"{float(r['image_score']):.3f}" if r["image_score"] is not None else DASH
        top = r["top_phrase"] or DASH
        cells.append(
            "<tr>"
            f'<td class="name">{h.esc(r["path"].name)}</td>'
            f'<td><a href="{h.esc(run_pic)}"><img class="side" src="{h.esc(run_pic)}" alt="run overlay"></a></td>'
            f'<td><a href="{h.esc(eval_pic)}"><img class="side" src="{h.esc(eval_pic)}" alt="ground truth"></a></td>'
            f'<td class="name">{h.esc(r["truth"])}</td>'
            f'<td class="name {"warn" if r["verdict"] == "defect" else ""}">{h.esc(r["verdict"] or "failed")}</td>'
            f'<td class="num">{score}</td><td class="name">{h.esc(top)}</td>'
            f'<td class="name">{"yes" if ok else "<b class=warn>no</b>"}</td></tr>')
    agree = sum((r["truth"] != "good") == (r["verdict"] == "defect") for r in rows)
    return (
        '<section class="card" id="truth"><h2>Verdicts beside the ground truth</h2>'
        f'<p class="note">`iapas run` on the {h.esc(category)} test folder ({len(rows)} parts, good and defective): '
        f"verdict defect when the image score reaches {threshold:.3f}. Left: the run's overlay (regions above the "
        "threshold, tags describe each region); right: the evaluation's overlay of the same part with the ground "
        f"truth outlined in green. {agree} of {len(rows)} verdicts agree with the truth. "
        'Every verdict: <a href="results.csv">results.csv</a>.</p>'
        '<style>img.side{width:160px;height:auto;display:block}</style>'
        '<table class="metrics"><thead><tr><th>part</th><th>run: verdict and regions</th>'
        "<th>truth (green outline)</th><th>truth</th><th>verdict</th><th>image score</th><th>top region</th>"
        f"<th>agree</th></tr></thead><tbody>{''.join(cells)}</tbody></table></section>")


def evaluation_section(per_cat: dict[str, dict[str, Any]], mean: dict[str, float]) -> str:
    """The evaluation of every texture (standard protocol), the figures `iapas demo` prints."""
    from iapas.outputs import html as h

    header = ["category", "pixel AP", "pixel F1-max", "pixel AUROC", "pixel AUPRO", "image AUROC", "images"]
    rows = [("", [cat, *(h.pct(m.get(k)) for k in METRIC_KEYS), str(m.get("n_images", "?"))], False)
            for cat, m in per_cat.items()]
    rows.append(("mean", ["mean", *(h.pct(mean.get(k)) for k in METRIC_KEYS), ""], False))
    return ('<section class="card" id="evaluation"><h2>Evaluation</h2>'
            + h.table("Offline profile, standard protocol (every test image, raw maps, exact F1-max), values in %",
                      header, rows)
            + "</section>")
