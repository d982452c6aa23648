"""Memory bank pieces: aspect-keeping resize, exact kNN, coreset coverage, settings round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from iapas.stages.reference import ReferenceSettings, augment, coreset, network_size, nn_distance


@pytest.mark.parametrize("w,h", [(500, 1250), (64, 400), (270, 324), (1000, 100)])
def test_network_size_keeps_aspect_and_short_side(w: int, h: int) -> None:
    s = ReferenceSettings(feature_size=128, max_long_side=4096)
    nw, nh = network_size(w, h, s)
    assert nw % 32 == 0 and nh % 32 == 0
    assert min(nw, nh) == 128
    assert abs((nw / nh) / (w / h) - 1) < 0.12


def test_long_side_bound_shrinks_without_squashing() -> None:
    s = ReferenceSettings(feature_size=256, max_long_side=512)
    nw, nh = network_size(100, 2000, s)
    assert nh == 512 and nw == 32  # 100 * 512/2000 = 25.6 -> 32 (aspect kept up to rounding)


@pytest.mark.parametrize("k", [1, 3])
def test_nn_distance_matches_brute_force(k: int) -> None:
    rng = np.random.default_rng(1)
    q, b = rng.normal(size=(50, 7)).astype(np.float32), rng.normal(size=(300, 7)).astype(np.float32)
    d = np.sqrt(((q[:, None] - b[None]) ** 2).sum(-1))
    expected = np.sort(d, axis=1)[:, :k].mean(1)
    got = nn_distance(torch.from_numpy(q), torch.from_numpy(b), k=k, chunk=16).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_coreset_keeps_rare_patterns() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    x[1234] += 50.0  # one rare pattern: a random subset of 50 would almost surely miss it
    idx = coreset(x, 50, dim=8)
    assert len(set(idx.tolist())) == 50 and 1234 in idx


def test_augmentations_and_settings_round_trip() -> None:
    a = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    assert augment(a, "rot90").shape == (4, 2, 3)
    np.testing.assert_array_equal(augment(augment(a, "hflip"), "hflip"), a)
    with pytest.raises(ValueError):
        augment(a, "shear")
    s = ReferenceSettings(stages=(2, 3), augment=("none", "vflip"), sigma=2.0)
    assert ReferenceSettings.from_json(s.to_json()) == s
