"""PR curves with the F1-max point and score histograms, on matplotlib's Agg canvas."""
from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
from sklearn.metrics import average_precision_score, precision_recall_curve

from iapas.outputs.plots import (
    histogram_figure,
    histogram_png,
    pr_curve,
    pr_curve_figure,
    pr_curve_png,
)


def _data(n: int = 5000, seed: int = 0, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.08
    s = rng.normal(0, 1, n) + 1.5 * y
    return (np.round(s, 1) if ties else s).astype(np.float32), y


@pytest.mark.parametrize("ties", [True, False])
def test_curve_matches_scikit_learn(ties: bool) -> None:
    s, y = _data(ties=ties)
    c = pr_curve(s, y)
    p, r, t = precision_recall_curve(y, s)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0)[:-1]
    assert c.ap == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert c.f1_max == pytest.approx(f1.max(), abs=1e-12)
    assert c.f1_threshold == pytest.approx(t[np.argmax(f1)])
    assert np.all(np.diff(c.recall) >= 0)
    precision, recall, _ = precision_recall_curve(y, s)  # increasing thresholds, then a final (P=1, R=0) point
    assert np.allclose(precision[:-1][::-1], c.precision) and np.allclose(recall[:-1][::-1], c.recall)


def test_curve_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        pr_curve(np.arange(10.0), np.zeros(10, bool))


def test_pr_figure_marks_the_f1_max_point_of_each_series() -> None:
    a, b = pr_curve(*_data(seed=1)), pr_curve(*_data(seed=2, ties=False))
    fig = pr_curve_figure({"offline": a, "paper": b}, "tile")
    assert isinstance(fig.canvas, FigureCanvasAgg)
    ax = fig.axes[0]
    stars = [ln for ln in ax.lines if ln.get_marker() == "*"]
    assert len(stars) == 2
    for ln, c in zip(stars, (a, b)):
        assert ln.get_xdata()[0] == pytest.approx(c.recall[c.best_index])
        assert ln.get_ydata()[0] == pytest.approx(c.precision[c.best_index])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"AP {100 * a.ap:.2f}%" in t for t in labels)
    assert any(f"F1-max {100 * b.f1_max:.2f}%" in t for t in labels)


def test_png_outputs_decode() -> None:
    png = pr_curve_png({"x": pr_curve(*_data())}, "t")
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (550, 462)
    arr = np.asarray(img.convert("RGB"))
    assert arr.std() > 10  # drawn, not blank
    hist = Image.open(io.BytesIO(histogram_png(np.random.rand(100), np.random.rand(20) + 1, "h", "score", 0.9)))
    assert hist.size == (550, 374)


def test_histogram_counts_and_threshold_line() -> None:
    normal, anomalous = np.array([0.1, 0.1, 0.2, 0.3]), np.array([0.8, 0.9])
    fig = histogram_figure(normal, anomalous, "images", "image score", threshold=0.5)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == pytest.approx(6)  # counts, one unit per image
    vlines = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert vlines and vlines[0].get_xdata()[0] == pytest.approx(0.5)
    assert ax.get_yscale() == "linear"


def test_pixel_histograms_use_log_density() -> None:
    rng = np.random.default_rng(0)
    fig = histogram_figure(rng.random(50_000), rng.random(500) + 0.5, "px", "pixel score")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    widths = ax.patches[0].get_width()
    normal_area = sum(p.get_height() * widths for p in ax.patches[: len(ax.patches) // 2])
    assert normal_area == pytest.approx(1.0, rel=1e-6)  # a density integrates to one
