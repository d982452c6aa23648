"""Step 2-4: score map = sum_i s_i m_i (raw in the paper profile, or clipped to [0, 1]), image score = max, mask."""
from __future__ import annotations

import numpy as np
import pytest

from iapas.stages.scoring import binary_mask, image_score, score_map


def _masks() -> np.ndarray:
    m = np.zeros((3, 4, 5), dtype=bool)
    m[0, 0:2, 0:2] = True
    m[1, 1:3, 1:3] = True  # overlaps mask 0 at (1, 1)
    m[2, 3, 4] = True
    return m


def test_score_map_is_the_weighted_sum_of_masks():
    smap = score_map(_masks(), [0.3, 0.5, 0.25], (4, 5))
    assert smap.dtype == np.float32 and smap.shape == (4, 5)
    assert smap[0, 0] == pytest.approx(0.3)
    assert smap[1, 1] == pytest.approx(0.8)  # overlap adds up
    assert smap[2, 2] == pytest.approx(0.5)
    assert smap[3, 4] == pytest.approx(0.25)
    assert smap[3, 0] == 0.0
    assert float(smap.sum()) == pytest.approx(0.3 * 4 + 0.5 * 4 + 0.25)


def test_overlapping_masks_are_clipped_to_one():
    smap = score_map(_masks(), [0.7, 0.6, 0.1], (4, 5))
    assert smap[1, 1] == 1.0  # 1.3 clipped
    assert smap[0, 0] == pytest.approx(0.7)
    assert smap.max() <= 1.0 and smap.min() >= 0.0


def test_image_score_is_the_map_maximum_and_zero_without_regions():
    smap = score_map(_masks(), [0.3, 0.5, 0.25], (4, 5))
    assert image_score(smap) == pytest.approx(0.8)
    empty = score_map(np.zeros((0, 4, 5), dtype=bool), [], (4, 5))
    assert empty.shape == (4, 5) and image_score(empty) == 0.0 and not binary_mask(empty).any()


def test_binary_mask_default_and_threshold():
    smap = score_map(_masks(), [0.3, 0.5, 0.25], (4, 5))
    assert binary_mask(smap).sum() == 4 + 4 - 1 + 1
    assert binary_mask(smap, 0.4).sum() == 4  # mask 1 (0.5) and the overlap (0.8)
    assert np.array_equal(binary_mask(smap, 0.4), smap > 0.4)


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError):
        score_map(_masks(), [0.3, 0.5], (4, 5))
    with pytest.raises(ValueError):
        score_map(_masks(), [0.3, 0.5, 0.2], (5, 4))


def test_paper_profile_keeps_the_raw_sum_and_its_max_is_the_image_score():
    """clip=False (the paper profile): overlaps exceed 1, as sum_i s_i m_i does in the paper and official code."""
    smap = score_map(_masks(), [0.7, 0.6, 0.1], (4, 5), clip=False)
    assert smap[1, 1] == pytest.approx(1.3) and smap[0, 0] == pytest.approx(0.7)
    assert image_score(smap) == pytest.approx(1.3)
    assert score_map(_masks(), [0.7, 0.6, 0.1], (4, 5))[1, 1] == pytest.approx(1.0)
