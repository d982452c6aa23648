"""Every dataset reader finds and reads a synthetic copy of its publisher's layout correctly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iapas.data import dataset_names, get_reader, mask_array
from iapas.errors import DatasetError, InputError, SettingsError
from synthetic_layouts import LAYOUTS, _save_mask


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_reader_counts_labels_and_mask_alignment(tmp_path: Path, name: str) -> None:
    root = tmp_path / "data"
    expected = LAYOUTS[name](root)
    reader = get_reader(name)
    assert reader.categories(root) == sorted(expected)
    for cat, exp in expected.items():
        split = reader.load(root, cat)
        assert len(split.test) == exp["test"], cat
        assert sum(s.label for s in split.test) == exp["anomalous"], cat
        assert len(split.normal_pool) == exp["pool"], cat
        assert all(s.category == cat for s in split.test)
        test_paths = {str(s.image_path) for s in split.test}
        if not split.pool_overlaps_test:
            assert not test_paths & {str(p) for p in split.normal_pool}
        for s in split.test:
            img = np.asarray(Image.open(s.image_path).convert("L"), dtype=float)
            if s.label == 0:
                assert s.defect_type == "good" or name in ("mtd", "ksdd1", "ksdd2"), s
                assert img.max() < 130, s  # no defect painted on normal images
                if s.mask_path is not None:
                    assert not mask_array(s.mask_path).any()
                continue
            mask = mask_array(s.mask_path)
            assert mask.shape == img.shape, s  # (H, W) of the image, not transposed
            assert mask.any()
            assert img[mask].mean() > 150 and img[~mask].mean() < 80, s


def test_mtd_rule_removes_sampled_normals_from_test(tmp_path: Path) -> None:
    LAYOUTS["mtd"](tmp_path)
    split = get_reader("mtd").load(tmp_path, "mtd")
    sampled = split.normal_pool[:5]
    test = split.test_for(sampled)
    assert len(test) == len(split.test) - 5
    assert not {str(p) for p in sampled} & {str(s.image_path) for s in test}
    assert {s.defect_type for s in test if s.label} == {"MT_Blowhole", "MT_Crack", "MT_Uneven"}
    assert split.kind == "texture"


def test_mvtec_textures_and_defect_types(tmp_path: Path) -> None:
    LAYOUTS["mvtec"](tmp_path)
    reader = get_reader("mvtec")
    bottle, carpet = reader.load(tmp_path, "bottle"), reader.load(tmp_path, "carpet")
    assert (bottle.kind, carpet.kind) == ("object", "texture")
    assert sorted({s.defect_type for s in bottle.test}) == ["broken", "contamination", "good"]
    assert all(s.mask_path is None for s in bottle.test if s.label == 0)


@pytest.mark.parametrize("encoding", ["255", "01", "palette", "fringe"])
def test_mask_encodings_binarise_as_published(tmp_path: Path, encoding: str) -> None:
    mask = np.zeros((10, 14), dtype=bool)
    mask[2:6, 3:9] = True
    path = tmp_path / "m.png"
    _save_mask(path, mask, encoding)
    assert np.array_equal(mask_array(path), mask)


def test_three_class_mask_counts_every_nonzero_value(tmp_path: Path) -> None:
    arr = np.zeros((6, 6), dtype=np.uint8)
    arr[1, 1], arr[2, 2] = 1, 2
    Image.fromarray(arr).save(tmp_path / "m.png")
    assert mask_array(tmp_path / "m.png").sum() == 2


def test_unknown_dataset_lists_allowed_names() -> None:
    with pytest.raises(SettingsError) as err:
        get_reader("mvtec-2")
    for name in ("mvtec", "mpdd", "btad", "ksdd1", "ksdd2", "mtd", "dtd-synthetic", "dagm2007", "visa", "folder"):
        assert name in str(err.value)
    assert len(dataset_names()) == 10


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_missing_root_names_the_path(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match="does-not-exist"):
        get_reader(name).categories(tmp_path / "does-not-exist")


def test_malformed_layouts_name_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "mtd").mkdir()
    with pytest.raises(DatasetError, match="MT_Free"):
        get_reader("mtd").categories(tmp_path / "mtd")
    (tmp_path / "visa").mkdir()
    with pytest.raises(DatasetError, match="1cls.csv"):
        get_reader("visa").categories(tmp_path / "visa")
    LAYOUTS["mvtec"](tmp_path / "mv")
    import shutil

    shutil.rmtree(tmp_path / "mv" / "bottle" / "train")
    with pytest.raises(DatasetError, match="train/good"):
        get_reader("mvtec").load(tmp_path / "mv", "bottle")
    with pytest.raises(DatasetError, match="'nope'.*bottle"):
        get_reader("mvtec").load(tmp_path / "mv", "nope")
    (tmp_path / "f" / "test").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        get_reader("folder").load(tmp_path / "f", "f")
    # without a normal folder the pool is empty and says why (only zero-shot evaluation takes it)
    Image.new("L", (8, 8)).save(tmp_path / "f" / "test" / "a.png")
    split = get_reader("folder").load(tmp_path / "f", "f")
    assert split.normal_pool == [] and "normal" in split.pool_rule and "--zero-shot" in split.pool_rule


def test_missing_mask_of_an_anomalous_image_is_reported_per_image(tmp_path: Path) -> None:
    LAYOUTS["mvtec"](tmp_path)
    (tmp_path / "bottle" / "ground_truth" / "broken" / "001_mask.png").unlink()
    split = get_reader("mvtec").load(tmp_path, "bottle")
    s = next(s for s in split.test if s.defect_type == "broken" and s.image_path.stem == "001")
    with pytest.raises(InputError, match="001_mask.png"):
        mask_array(s.mask_path)


def test_dagm_without_labels_txt_uses_label_files(tmp_path: Path) -> None:
    expected = LAYOUTS["dagm2007"](tmp_path)
    for txt in tmp_path.rglob("Labels.txt"):
        txt.unlink()
    split = get_reader("dagm2007").load(tmp_path, "Class1")
    assert sum(s.label for s in split.test) == expected["Class1"]["anomalous"]
