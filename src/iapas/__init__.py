"""iapas: zero-shot industrial anomaly segmentation with image-aware prompts (IAP-AS, PAKDD 2025).

The public API is small, in the spirit of segment-anything: build a config, fit Stage 1 once on a
few normal images (the expensive, reusable part), then predict any number of images cheaply::

    import iapas

    pipe = iapas.Pipeline(iapas.build_config(profile="offline"))
    context = pipe.fit("good/")                  # Stage 1 -> iapas.Context; context.save("context.json")
    pred = pipe.predict_one("to_check/a.png", context)
    pred.score_map        # (H, W) float32 anomaly score per pixel
    pred.mask             # (H, W) bool defect mask
    pred.boxes            # iapas.Detections: xyxy (N, 4), scores, phrases and, paper/fused, SAM masks (N, H, W)
    iapas.decide(pred, context).label            # "defect" or "ok", with the threshold used

Metrics take flat (scores, labels) arrays: ``iapas.average_precision``, ``iapas.f1_max``,
``iapas.auroc``; ``iapas.aupro`` takes (N, H, W) maps and masks.

Names resolve lazily, so ``import iapas`` loads neither torch nor transformers.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Pipeline": "iapas.pipeline",
    "build_config": "iapas.config",
    "PipelineConfig": "iapas.config",
    "Context": "iapas.context",
    "Prediction": "iapas.types",
    "Box": "iapas.types",
    "Detections": "iapas.types",
    "decide": "iapas.verdict",
    "Verdict": "iapas.verdict",
    "average_precision": "iapas.metrics",
    "f1_max": "iapas.metrics",
    "auroc": "iapas.metrics",
    "aupro": "iapas.metrics",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'iapas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
