"""Segmentation and detection metrics; scikit-learn is the oracle in tests.

    from iapas.metrics import average_precision, f1_max, auroc, aupro, pixel_metrics
"""
from iapas.metrics.curve import RankCurve, rank_curve
from iapas.metrics.pro import aupro, pro_curve
from iapas.metrics.ranking import (
    MetricWarning,
    auroc,
    average_precision,
    f1_max,
    f1_max_fixed_grid,
    pixel_metrics,
)

__all__ = [
    "MetricWarning",
    "RankCurve",
    "aupro",
    "auroc",
    "average_precision",
    "f1_max",
    "f1_max_fixed_grid",
    "pixel_metrics",
    "pro_curve",
    "rank_curve",
]
