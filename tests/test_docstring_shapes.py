"""bench/docstring_shapes.py: the docstring figures of a package, and its --min-shapes gate."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "docstring_shapes.py"
_spec = importlib.util.spec_from_file_location("docstring_shapes", SCRIPT)
assert _spec is not None and _spec.loader is not None
shapes = importlib.util.module_from_spec(_spec)
sys.modules["docstring_shapes"] = shapes
_spec.loader.exec_module(shapes)

PACKAGE = '''
import numpy as np
import torch


def with_shape(a: np.ndarray) -> np.ndarray:
    """Doubled.

    Args:
        a: (H, W) map.
    Returns:
        (H, W) map.
    """


def vector(a: "np.ndarray") -> float:
    """Sum of an (N,) vector."""


def says_shape(t: torch.Tensor) -> None:
    """Any shape works."""


def no_shape(a: np.ndarray) -> np.ndarray:
    """Doubled (twice as large)."""


def tuple_is_not_a_shape(a: float) -> "np.ndarray":
    """Level (scale, sigma, min_size) of x."""


def undocumented(x: int) -> int:
    return x


def no_params() -> int:
    """Args:
        none really.
    """


def _private(a: np.ndarray) -> None:
    pass


class Thing:
    def method(self, a: np.ndarray) -> None:
        """A (N, 4) box array."""

    def _hidden(self, a: np.ndarray) -> None:
        pass


class _Private:
    def method(self, a: np.ndarray) -> None:
        pass
'''


def _package(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "_private").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "mod.py").write_text(PACKAGE)
    (root / "_private" / "hidden.py").write_text("import numpy as np\n\ndef f(a: np.ndarray) -> None:\n    pass\n")
    return root


def test_figures_count_public_functions_args_and_shapes(tmp_path: Path) -> None:
    docs = shapes.measure(_package(tmp_path))
    names = [d.where.split(" ")[1] for d in docs]
    assert names == ["with_shape", "vector", "says_shape", "no_shape", "tuple_is_not_a_shape", "undocumented",
                     "no_params", "Thing.method"]
    stated = {d.where.split(" ")[1] for d in docs if d.takes_arrays and d.states_shape}
    assert stated == {"with_shape", "vector", "says_shape", "Thing.method"}
    f = shapes.figures(docs)
    assert f["functions"] == 8 and f["docstring_pct"] == pytest.approx(700 / 8)
    assert f["with_params"] == 7 and f["args_pct"] == pytest.approx(100 / 7)  # no_params' Args does not count
    assert f["array_functions"] == 6 and f["shapes_pct"] == pytest.approx(400 / 6)


def test_min_shapes_gate_exits_one_below_the_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _package(tmp_path)
    assert shapes.main(["--root", str(root), "--min-shapes", "66"]) == 0
    assert shapes.main(["--root", str(root), "--min-shapes", "67", "--list"]) == 1
    out = capsys.readouterr()
    assert "stating array shapes (of 6 taking or returning arrays): 66.7%" in out.out
    assert "no shape: pkg/mod.py:24 no_shape" in out.out and "FAIL" in out.err


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_iapas_states_array_shapes_in_at_least_80_percent() -> None:
    f = shapes.figures(shapes.measure(SCRIPT.parents[1] / "src" / "iapas"))
    assert f["shapes_pct"] >= 80.0, f
