"""The names a user needs are importable from `iapas` itself, without loading torch."""
from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

import iapas


def test_every_exported_name_resolves() -> None:
    from iapas.pipeline import Pipeline
    from iapas.verdict import decide

    assert set(iapas.__all__) == {"__version__", *iapas._EXPORTS}
    for name, module in iapas._EXPORTS.items():  # the very object of the module that defines it
        assert getattr(iapas, name) is getattr(importlib.import_module(module), name), name
    assert iapas.Pipeline is Pipeline and iapas.decide is decide
    assert callable(iapas.Pipeline.from_context) and not hasattr(iapas.Pipeline, "predict_many")
    assert iapas.build_config(profile="offline").profile == "offline"
    assert iapas.f1_max(np.array([0.1, 0.9]), np.array([False, True])) == pytest.approx(1.0)
    with pytest.raises(AttributeError):
        iapas.not_a_name  # noqa: B018


def test_import_iapas_loads_no_torch() -> None:
    code = "import sys, iapas; iapas.build_config; iapas.Context; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_metrics_from_the_top_level_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.2
    s = rng.random(500) + y * 0.3
    assert iapas.average_precision(s, y) == pytest.approx(average_precision_score(y, s))
