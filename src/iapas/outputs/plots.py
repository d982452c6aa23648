"""Per-category plots: precision-recall curves with the F1-max point, and normal-vs-anomalous histograms.

Figures are built on matplotlib's Agg canvas directly (no pyplot state), so they render the same in a
server, a test or a thread, and return PNG bytes that the caller writes atomically.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from iapas.metrics.curve import curve_ap, rank_curve

SERIES_COLOURS = ("#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#5c940d", "#0b7285", "#495057")


@dataclass
class PRCurve:
    """A precision-recall curve (points in order of increasing recall) plus its exact summary numbers."""

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray  # score threshold of each point (predict positive if score >= t)
    ap: float
    f1_max: float
    f1_threshold: float
    best_index: int
    positive_rate: float


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> PRCurve:
    """Curve and AP / F1-max from the project's metrics (one sort), so plots match metrics.json.

    Args:
        scores: (N,) scores (any shape; flattened).
        labels: (N,) bool labels with both classes present.
    Returns:
        The precision-recall curve with its AP, F1-max and F1 threshold.
    """
    s = np.asarray(scores).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if y.all() or not y.any():
        raise ValueError("a precision-recall curve needs both positive and negative samples")
    c = rank_curve(s, y)
    tps, fps = c.tps.astype(np.float64), c.fps.astype(np.float64)
    precision = tps / np.maximum(tps + fps, 1.0)
    recall = tps / c.n_pos
    return _finish(precision, recall, c.thresholds, curve_ap(c), float(y.mean()))


def _finish(precision: np.ndarray, recall: np.ndarray, thresholds: np.ndarray, ap: float, rate: float) -> PRCurve:
    """F1 at every point; F1-max is taken over all thresholds (exact)."""
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = int(np.argmax(f1))
    return PRCurve(precision=precision, recall=recall, thresholds=thresholds, ap=float(ap), f1_max=float(f1[best]),
                   f1_threshold=float(thresholds[best]), best_index=best, positive_rate=rate)


def _thin(x: np.ndarray, y: np.ndarray, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Fewer points for drawing (millions of pixel thresholds add nothing visible)."""
    if len(x) <= n:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, n).astype(int))
    return x[idx], y[idx]


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: heavy, loaded only when a plot is drawn
    from matplotlib.figure import Figure  # matplotlib: heavy, loaded only when a plot is drawn

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _to_png(fig) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white", pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def pr_curve_png(series: dict[str, PRCurve], title: str) -> bytes:
    """PNG of `pr_curve_figure`."""
    return _to_png(pr_curve_figure(series, title))


def pr_curve_figure(series: dict[str, PRCurve], title: str):  # type: ignore[no-untyped-def]
    """PR curves (one per setting) with each F1-max point marked by a star and labelled."""
    fig = _figure(5.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, c) in enumerate(series.items()):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        r, p = _thin(np.concatenate(([0.0], c.recall)), np.concatenate(([c.precision[0]], c.precision)))
        ax.plot(r, p, color=colour, lw=1.8, drawstyle="steps-pre",
                label=f"{name}: AP {100 * c.ap:.2f}%, F1-max {100 * c.f1_max:.2f}%")
        br, bp = c.recall[c.best_index], c.precision[c.best_index]
        ax.plot([br], [bp], marker="*", ms=14, color=colour, mec="black", mew=0.8, zorder=5)
        right, high = br > 0.55, bp > 0.55  # keep the note inside the axes
        ax.annotate(f"F1-max {100 * c.f1_max:.1f}%\n@ score {c.f1_threshold:.3g}", (br, bp),
                    xytext=(-10 if right else 10, (-34 if high else 12) - 34 * i * (1 if high else -1)),
                    textcoords="offset points", fontsize=8, ha="right" if right else "left",
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.8},
                    bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": colour, "alpha": 0.9})
    first = next(iter(series.values()))
    ax.axhline(first.positive_rate, color="#868e96", ls=":", lw=1)
    ax.text(0.99, first.positive_rate, f" chance {100 * first.positive_rate:.1f}%", color="#868e96",
            fontsize=7, ha="right", va="bottom", transform=ax.get_yaxis_transform())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.9)
    fig.tight_layout()
    return fig


def histogram_png(
    normal: np.ndarray, anomalous: np.ndarray, title: str, xlabel: str,
    threshold: float | None = None, names: tuple[str, str] = ("normal", "anomalous"),
    threshold_name: str = "F1-max threshold",
) -> bytes:
    """PNG of `histogram_figure`, whose arguments it takes: (N,) normal and (M,) anomalous scores.

    Returns:
        The PNG file's bytes.
    """
    return _to_png(histogram_figure(normal, anomalous, title, xlabel, threshold, names, threshold_name))


def histogram_figure(
    normal: np.ndarray, anomalous: np.ndarray, title: str, xlabel: str,
    threshold: float | None = None, names: tuple[str, str] = ("normal", "anomalous"),
    threshold_name: str = "F1-max threshold",
):  # type: ignore[no-untyped-def]
    """Overlaid histograms of normal vs anomalous scores, with the F1-max (or decision) threshold when given.

    Pixel-sized samples (classes differ by orders of magnitude) are shown as log densities; image-sized
    samples as plain counts, where every image is one visible unit.

    Args:
        normal: (N,) scores of normal samples.
        anomalous: (M,) scores of anomalous samples.
        title, xlabel: the figure's texts.
        threshold: a vertical line, or None.
        names: the legend names of the two classes.
        threshold_name: the legend name of the line.
    Returns:
        The matplotlib Figure.
    """
    fig = _figure(5.0, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    n = np.asarray(normal, dtype=np.float64).ravel()
    a = np.asarray(anomalous, dtype=np.float64).ravel()
    both = np.concatenate([n, a]) if n.size + a.size else np.zeros(1)
    lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
    large = max(n.size, a.size) > 2000
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 60 if large else 30)
    for values, name, colour in ((n, names[0], "#1f5fbf"), (a, names[1], "#d9480f")):
        if values.size:
            ax.hist(values, bins=bins, density=large, alpha=0.55, color=colour, label=f"{name} (n={values.size:,})",
                    log=large)
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1.2, label=f"{threshold_name} {threshold:.3g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density (log scale)" if large else "count")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if n.size or a.size:
        ax.legend(fontsize=7, framealpha=0.9)
    fig.tight_layout()
    return fig
