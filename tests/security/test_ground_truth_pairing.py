"""The `folder` reader pairs a test image with a mask by bare name only when that is unambiguous, and
`evaluate` says how many test images it counted good and defective per category."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from files_support import images
from fake_profile import use_mean_diff
from iapas.data import get_reader
from iapas.errors import DatasetError


def mask(path: Path, defect: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((20, 20), np.uint8)
    if defect:
        m[5:10, 5:10] = 255
    Image.fromarray(m).save(path)
    return path


def mvtec_like(root: Path) -> Path:
    images(root / "good", 3, 60)
    images(root / "test" / "good", 0, names=["000.png", "001.png"])
    images(root / "test" / "crack", 0, 160, names=["000.png"])
    mask(root / "ground_truth" / "crack" / "000_mask.png")
    return root


def test_good_image_never_takes_a_mask_from_another_defect_folder(tmp_path: Path) -> None:
    root = mvtec_like(tmp_path / "part")
    with pytest.raises(DatasetError) as info:
        get_reader("folder").load(root, "part")
    text = str(info.value)
    assert str(root / "test" / "good" / "000.png") in text and str(root / "ground_truth" / "crack" / "000_mask.png") in text


def test_same_relative_path_pairs_and_good_stays_good(tmp_path: Path) -> None:
    root = tmp_path / "part"
    images(root / "good", 3, 60)
    images(root / "test" / "good", 0, names=["001.png"])
    images(root / "test" / "crack", 0, 160, names=["000.png"])
    mask(root / "ground_truth" / "crack" / "000_mask.png")
    split = get_reader("folder").load(root, "part")
    labels = {s.image_path.relative_to(root / "test").as_posix(): (s.label, s.mask_path) for s in split.test}
    assert labels["good/001.png"] == (0, None)
    assert labels["crack/000.png"] == (1, root / "ground_truth" / "crack" / "000_mask.png")


def test_flat_masks_still_pair_by_bare_name(tmp_path: Path) -> None:
    root = tmp_path / "part"
    images(root / "good", 3, 60)
    images(root / "test" / "crack", 0, 160, names=["a.png"])
    images(root / "test", 0, 90, names=["b.png"])
    mask(root / "masks" / "a_mask.png")
    mask(root / "masks" / "b.png", defect=False)
    split = get_reader("folder").load(root, "part")
    labels = {s.image_path.name: s.label for s in split.test}
    assert labels == {"a.png": 1, "b.png": 0}


def test_one_flat_mask_claimed_by_two_images_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "part"
    images(root / "good", 3, 60)
    images(root / "test" / "x", 0, names=["a.png"])
    images(root / "test" / "y", 0, names=["a.png"])
    mask(root / "masks" / "a_mask.png")
    with pytest.raises(DatasetError, match="would pair with 2 test images"):
        get_reader("folder").load(root, "part")


def test_evaluate_prints_good_and_defective_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli_apps import command_app
    from iapas.cli import evaluate

    root = tmp_path / "part"
    images(root / "good", 3, 60)
    images(root / "test" / "good", 0, names=["001.png", "002.png"])
    images(root / "test" / "crack", 0, 160, names=["000.png"])
    mask(root / "ground_truth" / "crack" / "000_mask.png")
    use_mean_diff(monkeypatch)
    res = CliRunner().invoke(command_app(evaluate), ["evaluate", "--dataset", "folder", "--root", str(root), "--out",
                                                     str(tmp_path / "o"), "--profile", "offline", "--num-normal", "3",
                                                     "--eval-size", "16"])
    assert res.exit_code == 0, res.output
    assert "part: 3 test images counted, 2 good, 1 defective" in res.stderr
