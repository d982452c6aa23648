"""Step 1-1 sampling: r normal images with a fixed seed, reproducible and independent of listing order."""
from __future__ import annotations

from pathlib import Path

import pytest

from iapas.errors import SettingsError
from iapas.pipeline import sample_normal_paths


def test_same_seed_same_sample_any_order() -> None:
    paths = [Path(f"good/{i:03d}.png") for i in range(40)]
    a = sample_normal_paths(paths, 10, 111)
    b = sample_normal_paths(list(reversed(paths)), 10, 111)
    assert a == b and len(a) == 10 and len(set(a)) == 10
    assert sample_normal_paths(paths, 10, 112) != a


def test_fewer_images_than_r_uses_all() -> None:
    paths = [Path(f"{i}.png") for i in range(4)]
    assert sample_normal_paths(paths, 10, 111) == sorted(paths)


def test_empty_pool_is_an_error() -> None:
    with pytest.raises(SettingsError, match="no images"):
        sample_normal_paths([], 10, 111)
