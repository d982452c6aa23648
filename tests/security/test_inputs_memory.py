"""Issue 12 item 5: huge-dimension files decode in bounded memory; masks get the same pixel limit.

Each load runs in a fresh subprocess under an address-space cap and reports its own peak RSS (VmHWM).
The files are small (a few MB) with huge dimensions, written row by row by bench/bench_memory.py.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import iapas
from iapas.errors import InputError
from iapas.io.images import MAX_DECODE_PIXELS, load_mask

pytestmark = pytest.mark.slow  # decodes 10000-40000 px images

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_memory.py"
SRC = str(Path(iapas.__file__).resolve().parents[1])
GUARD_GB = 3.0  # a regression hits MemoryError here instead of eating the machine


def _bench():
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _peak(call: str, path: Path) -> dict:
    bench = _bench()
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", bench.MEASURE, call, str(path), str(GUARD_GB)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_16bit_rgba_png_of_10000_px_loads_under_800mb(tmp_path: Path) -> None:
    path = _bench().png16_rgba(tmp_path / "big16.png", side=10000, level=1)  # 400 MB once decoded as RGBA
    assert path.stat().st_size < 10_000_000
    res = _peak("load_image", path)
    assert res["result"].startswith("loaded 4096x4096"), res
    assert res["peak_mb"] < 800, res  # the decoded image plus small strips, never a full-size copy


@pytest.mark.slow
def test_float_tiff_loads_with_one_working_copy_at_most(tmp_path: Path) -> None:
    side = 8000
    arr = np.tile(np.where(np.arange(side) // 512 % 2 == 0, -3.0, 7.0).astype(np.float32), (side, 1))
    path = tmp_path / "f.tif"
    Image.fromarray(arr, mode="F").save(path, compression="tiff_adobe_deflate")
    del arr
    res = _peak("load_image", path)
    assert res["result"].startswith("loaded 4096x4096") and "min-max scaled from [-3, 7]" in res["result"], res
    assert res["peak_mb"] < 700, res  # 244 MB decoded; converting at full size first peaked above 1.3 GB


@pytest.fixture(scope="module")
def huge_mask(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bench().mask_png(tmp_path_factory.mktemp("mask") / "big_mask.png", side=40000, level=1)


@pytest.mark.parametrize("call", ["load_mask", "mask_array"])
def test_40000_px_mask_is_refused_from_its_header(huge_mask: Path, call: str) -> None:
    res = _peak(call, huge_mask)
    assert res["result"].startswith("refused: mask is too large to decode safely (40000x40000"), res
    assert res["peak_mb"] < 200, res


def test_mask_with_the_wrong_size_is_refused_before_decoding(tmp_path: Path) -> None:
    path = _bench().mask_png(tmp_path / "m.png", side=300, level=1)
    with pytest.raises(InputError, match="mask size 300x300 differs from its image size 200x100"):
        load_mask(path, size=(200, 100))
    assert 40000 * 40000 > MAX_DECODE_PIXELS  # the limit that refuses the case above
