"""The development suite: the offline profile on every development dataset present, both protocols.

    python bench/suite.py [--datasets mtd,bottle,synthetic,parts,strip,fine,tiles] [--synthetic-only] [--limit N] [--out DIR]
                          [--zero-shot] [--set FIELD=VALUE ...] [--kind object|texture|auto]

Datasets: MTD (`../shared/datasets/mtd`, reader `mtd`, a texture), MVTec-AD bottle
(`../shared/datasets/mvtec`, reader `mvtec`, category bottle, an object) and the synthetic demo set
(scikit-image textures with drawn defects, generated under OUT; always present) and the synthetic families
of `iapas.data.synthetic_families` (parts: an aligned object with moved/missing parts; strip: long strips
with 1-2 px cracks; fine: a fine weave with a blurred ellipse; tiles: tiles of varying brightness with
faint defects), generated under OUT, each its own row. Datasets whose folder is
missing are skipped with a note; `$IAPAS_DATASETS` overrides where they are looked for.
Every dataset runs through `run_evaluation`, the harness behind `iapas evaluate`: the standard protocol
predicts and caches every test image, the paper protocol reuses those records. One row per dataset
(a dataset with several categories shows their mean) with pixel AP, F1-max, AUROC, AUPRO, image AUROC
and images/s, then the mean over the datasets. Defaults are chosen on the standard-protocol mean.
`--set FIELD=VALUE` overrides a config field (YAML value, e.g. `--set reference_stages=[2,3]`) so
that every variant in docs/offline-tuning.md is one command. Writes OUT/suite.json and OUT/suite.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEYS = ("pixel_ap", "pixel_f1_max", "pixel_auroc", "pixel_aupro", "image_auroc")
HEADERS = ("pixel AP", "F1-max", "AUROC", "AUPRO", "image AUROC", "images/s")
PROTOCOLS = ("standard", "paper")
# at each context's own thresholds (iapas.evaluation.operating); *_decided: paper protocol, ok parts read as zero maps
OP_KEYS = ("good_flagged", "defective_missed", "image_f1", "image_f1_max", "pixel_f1", "pixel_f1_max",
           "regions_per_good", "pixel_ap_decided", "pixel_f1_max_decided")
OP_HEADERS = ("good flagged", "defective missed", "image F1", "image F1-max", "ratio", "pixel F1", "pixel F1-max",
              "ratio", "regions/good part")
FAMILY_NAMES = ("parts", "strip", "fine", "tiles")  # iapas.data.synthetic_families.FAMILIES
DATASETS = ("mtd", "bottle", "synthetic", *FAMILY_NAMES)


@dataclass(frozen=True)
class SuiteDataset:
    """One row of the suite: which reader reads which root, and which categories."""

    name: str
    reader: str
    root: Path
    categories: tuple[str, ...] | None
    kind: str | None = None  # None: the reader's kind per category (mvtec bottle: object, mtd: texture)


def dataset_roots() -> list[Path]:
    """Folders that may hold `mtd/` and `mvtec/`: $IAPAS_DATASETS, then ../shared/datasets of the checkout."""
    here = Path(__file__).resolve().parent
    found = [Path(os.environ["IAPAS_DATASETS"])] if os.environ.get("IAPAS_DATASETS") else []
    found += [parent / "shared" / "datasets" for parent in here.parents]
    return found


def find_dataset(rel: str) -> Path | None:
    return next((base / rel for base in dataset_roots() if (base / rel).is_dir()), None)


def synthetic_dataset(out: Path) -> list[SuiteDataset]:
    """The demo's synthetic textures, written once under OUT (one `folder` root per texture)."""
    from iapas.data.synthetic import TEXTURES, make_dataset

    root = out / "synthetic-data"
    if not all((root / t / "defects.json").is_file() for t in TEXTURES):
        make_dataset(root, n_normal=10, n_test=12, size=(192, 192), seed=0)
    return [SuiteDataset("synthetic", "folder", root / t, None, kind="texture") for t in TEXTURES]


def family_dataset(name: str, out: Path) -> list[SuiteDataset]:
    """One synthetic family (iapas.data.synthetic_families), written once under OUT, with its natural kind."""
    from iapas.data.synthetic_families import FAMILY_KINDS, make_family

    root = out / "families-data"
    if not (root / name / "defects.json").is_file():
        make_family(root, name, n_normal=10, n_test=12, seed=0)
    return [SuiteDataset(name, "folder", root / name, None, kind=FAMILY_KINDS[name])]


def suite_datasets(names: list[str], out: Path) -> tuple[list[list[SuiteDataset]], list[str]]:
    """The datasets asked for that are present, grouped by row; notes about the missing ones."""
    rows: list[list[SuiteDataset]] = []
    notes: list[str] = []
    for name in names:
        if name == "synthetic":
            rows.append(synthetic_dataset(out))
        elif name in FAMILY_NAMES:
            rows.append(family_dataset(name, out))
        elif name == "mtd":
            root = find_dataset("mtd")
            rows.append([SuiteDataset("mtd", "mtd", root, None)]) if root else notes.append("mtd: not found, skipped")
        elif name == "bottle":
            root = find_dataset("mvtec/bottle")
            if root:
                rows.append([SuiteDataset("bottle", "mvtec", root.parent, ("bottle",))])
            else:
                notes.append("mvtec/bottle: not found, skipped")
        else:
            raise SystemExit(f"unknown suite dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return rows, notes


def parse_sets(items: list[str]) -> dict[str, Any]:
    """--set FIELD=VALUE pairs, values parsed as YAML (numbers, lists, strings)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes FIELD=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


def evaluate_row(parts: list[SuiteDataset], out: Path, config: Any, protocol: str, limit: int | None,
                 auto_kind: bool, zero_shot: bool) -> dict[str, Any]:
    """Run the harness on every part of one row; the row is the mean over its categories."""
    from iapas.evaluation.harness import EvalOptions, run_evaluation

    values: dict[str, list[float]] = {k: [] for k in (*KEYS, *OP_KEYS)}
    kinds: dict[str, str] = {}
    rules: list[str] = []
    images = seconds = 0.0
    n_images = 0
    for part in parts:
        dest = out / part.name / (part.root.name if part.reader == "folder" else "")
        extra = {"zero_shot": True} if zero_shot else {}
        cfg, auto = config, auto_kind
        if auto_kind and part.kind:  # the folder reader cannot know that the synthetic set is textures
            cfg, auto = config.model_copy(update={"kind": part.kind}), False
        m = run_evaluation(part.reader, part.root, dest, cfg, EvalOptions(
            categories=list(part.categories or []) or None, protocol=protocol, limit=limit, progress=False,
            auto_kind=auto, **extra))
        kinds.update({f"{part.name}/{c}" if part.reader != "folder" else part.root.name: k
                      for c, k in m.get("kinds", {}).items()})
        for cat in m["categories"].values():
            n_images += int(cat.get("n_images", 0))
            th = cat.get("thresholds")
            if isinstance(th, dict) and th.get("rule"):
                rules.append(th["rule"])
            for k in (*KEYS, *OP_KEYS):
                v = cat.get(k)
                if v is not None and v == v:
                    values[k].append(float(v))
        if m.get("images_per_second"):
            count = sum(int(c.get("n_images", 0)) for c in m["categories"].values())
            images += count
            seconds += count / m["images_per_second"]
    row: dict[str, Any] = {k: (sum(v) / len(v) if v else None) for k, v in values.items()}
    row["images_per_second"] = images / seconds if seconds > 0 else None
    row["n_images"] = n_images
    row["kinds"] = kinds
    row["rules"] = rules
    return row


def mean_row(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in (*KEYS, *OP_KEYS, "images_per_second"):
        vals = [r[k] for r in rows.values() if r.get(k) is not None]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def markdown(results: dict[str, dict[str, dict[str, Any]]], header: str) -> str:
    lines = [header, ""]
    for protocol, rows in results.items():
        lines += [f"### {protocol} protocol", "", "| dataset | " + " | ".join(HEADERS) + " | images |",
                  "|---" * (len(HEADERS) + 2) + "|"]
        for name, row in rows.items():
            cells = [("-" if row.get(k) is None else f"{100 * row[k]:.2f}") for k in KEYS]
            ips = row.get("images_per_second")
            cells.append("-" if ips is None else f"{ips:.1f}")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {row.get('n_images', '')} |")
        lines.append("")
        lines += operating_lines(protocol, rows)
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def operating_lines(protocol: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    """The operating-point table of one protocol: figures at each context's own thresholds, in %."""
    decided = protocol == "paper"
    head = list(OP_HEADERS) + (["pixel AP (ok = zero map)", "F1-max (ok = zero map)"] if decided else []) + ["kind"]
    lines = [f"#### {protocol} protocol, at the operating point (each context's own verdict and mask thresholds)", "",
             "| dataset | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for name, row in rows.items():
        g = row.get
        cells = [pct(g("good_flagged")), pct(g("defective_missed")), pct(g("image_f1")), pct(g("image_f1_max")),
                 _ratio(g("image_f1"), g("image_f1_max")), pct(g("pixel_f1")), pct(g("pixel_f1_max")),
                 _ratio(g("pixel_f1"), g("pixel_f1_max")), "-" if g("regions_per_good") is None else f"{g('regions_per_good'):.2f}"]
        if decided:
            cells += [pct(g("pixel_ap_decided")), pct(g("pixel_f1_max_decided"))]
        kinds = sorted(set((g("kinds") or {}).values()))
        cells.append(", ".join(kinds) or "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rules = [r for row in rows.values() for r in (row.get("rules") or [])]
    if rules:
        lines += ["", f"Threshold rule (first category): {rules[0]}"]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated: {', '.join(DATASETS)}")
    ap.add_argument("--synthetic-only", action="store_true", help="only the synthetic demo set (what CI runs)")
    ap.add_argument("--limit", type=int, default=None, help="at most N test images per category (evenly spread)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/iapas-suite"))
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--zero-shot", action="store_true", help="no normal images: mutual scoring of the test images")
    ap.add_argument("--kind", choices=("object", "texture", "auto"), default=None, help="one kind for every dataset, "
                    "or auto: chosen from each category's normal images (default: each dataset's own kind)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE")
    args = ap.parse_args(argv)

    from iapas.config import build_config

    names = ["synthetic"] if args.synthetic_only else [n.strip() for n in args.datasets.split(",") if n.strip()]
    overrides = parse_sets(args.sets)
    config = build_config(profile="offline", kind=None if args.kind == "auto" else args.kind, **overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    groups, notes = suite_datasets(names, args.out)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    t0 = time.perf_counter()
    for protocol in [p.strip() for p in args.protocols.split(",") if p.strip()]:
        rows = {}
        for parts in groups:
            rows[parts[0].name] = evaluate_row(parts, args.out, config, protocol, args.limit,
                                               auto_kind=args.kind is None, zero_shot=args.zero_shot)
        rows["mean"] = mean_row(rows)
        results[protocol] = rows
    mode = "zero-shot (no normal images)" if args.zero_shot else f"r = {config.num_normal} normal images"
    mode += f", kind {args.kind or 'of each dataset'}"
    header = (f"## offline profile suite: {mode}, limit {args.limit or 'none'}, overrides {overrides or 'none'}, "
              f"{time.perf_counter() - t0:.0f} s")
    text = markdown(results, header)
    print(text)
    payload = {"mode": "zero-shot" if args.zero_shot else "few-shot", "limit": args.limit, "overrides": overrides,
               "kind": args.kind, "results": results, "notes": notes}
    (args.out / "suite.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    (args.out / "suite.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
