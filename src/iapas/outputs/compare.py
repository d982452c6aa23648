"""`iapas compare`: side-by-side panels of two or more result folders over the same source images.

Folders may be `iapas run`/`segment` outputs or `iapas evaluate` outputs, mixed; images are matched by
their resolved source path. Writes compare_panel_NN.png files and compare.html next to them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iapas.errors import IapasError, InputError, SettingsError
from iapas.io.atomic import atomic_write_bytes, atomic_write_text
from iapas.io.images import load_image
from iapas.outputs import drawing as d
from iapas.outputs import html as h
from iapas.outputs.panels import PanelRow, render_panel
from iapas.outputs.sources import EvalFolder, ImageResult, folder_profile, load_results

ROWS_PER_PANEL = 8


class NothingToCompare(IapasError):
    """No source image appears in every compared folder."""


@dataclass
class Compared:
    """One folder taking part in a comparison."""

    folder: Path
    kind: str  # "evaluation" or "run"
    profile: str
    label: str
    by_key: dict[str, ImageResult]


def _load(folders: list[Path]) -> list[Compared]:
    out = []
    for f in folders:
        kind, results = load_results(f)
        by_key: dict[str, ImageResult] = {}
        for r in results:
            by_key.setdefault(r.key, r)
        out.append(Compared(Path(f), kind, folder_profile(Path(f)), "", by_key))
    names = [c.folder.name or str(c.folder) for c in out]
    if len(set(names)) < len(names):  # same folder name under different parents: use more of the path
        names = ["/".join(c.folder.resolve().parts[-2:]) for c in out]
    for c, name in zip(out, names):
        c.label = f"{name} ({c.profile})"
    return out


def choose_images(runs: list[Compared], keys: list[str], n: int) -> list[str]:
    """Up to n matched images. With ground truth: anomalous ones round-robin over defect types, then the
    most suspicious normal one; without: the images whose image scores differ most between the runs."""
    labelled = {k: next((c.by_key[k] for c in runs if c.by_key[k].label is not None), None) for k in keys}
    if any(v is not None for v in labelled.values()):
        groups: dict[str, list[str]] = {}
        normal = []
        for k in keys:
            r = labelled[k]
            if r is not None and r.label == 1:
                groups.setdefault(f"{r.category}/{r.defect_type}", []).append(k)
            else:
                normal.append(k)
        n_anom = n - 1 if normal and n > 1 else n
        chosen: list[str] = []
        queues = [g for _, g in sorted(groups.items())]
        while len(chosen) < n_anom and any(queues):
            for q in queues:
                if q and len(chosen) < n_anom:
                    chosen.append(q.pop(0))
        if normal and len(chosen) < n:
            chosen.append(max(normal, key=lambda k: max(c.by_key[k].image_score for c in runs)))
        return chosen
    spread = {k: float(np.ptp([c.by_key[k].image_score for c in runs])) for k in keys}
    return sorted(keys, key=lambda k: (-spread[k], k))[:n]


def _rgb(path: str) -> np.ndarray | None:
    try:
        rgb = load_image(path).rgb
    except InputError:
        return None
    return d.resize_rgb(rgb, d.fit_size(rgb.shape[1], rgb.shape[0], min_side=1, max_side=480))


def _row(runs: list[Compared], key: str) -> PanelRow:
    results = [c.by_key[key] for c in runs]
    first = results[0]
    gt = next((r.gt for r in results if r.gt is not None), None)
    name = "/".join(Path(first.path).parts[-3:])
    return PanelRow(label=name, rgb=_rgb(first.path), gt=gt, maps=[r.score_map for r in results],
                    captions=[f"image score {r.image_score:.3f}" for r in results])


def _metrics_table(runs: list[Compared]) -> str:
    evals = [(c, EvalFolder(c.folder)) for c in runs if c.kind == "evaluation" and (c.folder / "metrics.json").is_file()]
    if not evals:
        return ""
    keys = [("pixel_ap", "Pixel AP"), ("pixel_f1_max", "Pixel F1-max"), ("pixel_auroc", "Pixel AUROC"),
            ("image_auroc", "Image AUROC")]
    rows = [("", [c.label, e.dataset, e.protocol, *(h.pct((e.metrics.get("mean") or {}).get(k)) for k, _ in keys)], False)
            for c, e in evals]
    protocols = sorted({e.protocol for _, e in evals})
    return h.table(f"Mean metrics of the evaluation folders (%), protocol: {', '.join(protocols)}",
                   ["Run", "Dataset", "Protocol", *(t for _, t in keys)], rows, numeric_from=3)


def write_comparison(folders: list[Path], out: Path, max_images: int = 8) -> Path:
    """Panels and compare.html for images present in every folder; returns the HTML path."""
    if len(folders) < 2:
        raise SettingsError("compare needs two or more result folders")
    if max_images < 1:
        raise SettingsError(f"--images must be at least 1, got {max_images}")
    runs = _load([Path(f) for f in folders])
    first = runs[0]
    keys = [k for k in first.by_key if all(k in c.by_key for c in runs[1:])]
    if not keys:
        raise NothingToCompare(
            "no source image appears in every folder (images are matched by their source path); "
            + ", ".join(f"{c.label}: {len(c.by_key)} images" for c in runs)
        )
    chosen = choose_images(runs, keys, max_images)
    rows = [_row(runs, k) for k in chosen]
    titles = [c.label for c in runs]
    vranges = [d.display_range([r.maps[j] for r in rows]) for j in range(len(runs))]
    out = Path(out)
    figs = []
    cell = 200 if len(runs) <= 3 else 160
    for i in range(0, len(rows), ROWS_PER_PANEL):
        part = rows[i: i + ROWS_PER_PANEL]
        panel = render_panel(part, titles, vranges=vranges, cell=cell)
        name = f"compare_panel_{i // ROWS_PER_PANEL + 1:02d}.png"
        atomic_write_bytes(out / name, d.png_bytes(panel))
        figs.append(h.figure(name, f"Images {i + 1}-{i + len(part)} of {len(rows)}: image | ground truth | "
                             "score map of each folder (one colour scale per column).", kind="panel"))
    folder_rows = [("", [c.label, c.kind, c.profile, str(c.folder), str(len(c.by_key))], False) for c in runs]
    score_rows = [("", [r.label, *(cap.replace("image score ", "") for cap in r.captions)], False) for r in rows]
    body = (
        '<section class="card" id="runs"><h2>Compared folders</h2>'
        + h.table(f"{len(keys)} source images appear in all {len(runs)} folders",
                  ["Run", "Kind", "Profile", "Folder", "Images"], folder_rows, numeric_from=4)
        + _metrics_table(runs) + "</section>"
        + '<section class="card" id="panels"><h2>Panels</h2>' + "".join(figs) + "</section>"
        + '<section class="card" id="scores"><h2>Image scores</h2>'
        + h.table("Image score of each shown image per run", ["Image", *titles], score_rows) + "</section>"
    )
    facts = [("folders", str(len(runs))), ("matched images", str(len(keys))), ("shown", str(len(rows))),
             ("profiles", ", ".join(dict.fromkeys(c.profile for c in runs)))]
    text = h.page("iapas comparison", facts, [("runs", "Folders"), ("panels", "Panels"), ("scores", "Image scores")],
                  body)
    return atomic_write_text(out / "compare.html", text)

