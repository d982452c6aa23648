"""The names a user needs are importable from `iapas` itself, without loading torch."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

import iapas


def test_every_exported_name_resolves() -> None:
    for name in iapas.__all__:
        assert getattr(iapas, name) is not None, name
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
