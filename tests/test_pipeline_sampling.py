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


def test_python_api_fit_folder_skips_mask_files(tmp_path) -> None:
    """`Pipeline.select_normal("good/")` on photos with their masks beside them samples only the photos."""
    import numpy as np
    from PIL import Image

    from iapas.config import build_config
    from iapas.pipeline import Pipeline

    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / f"t{i}.jpg")
        Image.fromarray(np.zeros((20, 24), np.uint8)).save(tmp_path / f"t{i}.png")  # MTD-style black mask
    chosen = Pipeline(build_config(profile="offline", num_normal=10)).select_normal(tmp_path)
    assert sorted(p.name for p in chosen) == [f"t{i}.jpg" for i in range(4)]


def test_runner_injection_and_registry() -> None:
    """Pipeline(config, runner=...) uses the given runner; unknown profiles list the registered ones."""
    import numpy as np
    import pytest

    from iapas.config import build_config
    from iapas.context import Context
    from iapas.errors import SettingsError
    from iapas.io.images import LoadedImage
    from iapas.pipeline import Pipeline, make_runner
    from iapas.profiles.registry import profile_names
    from iapas.types import Prediction

    class Constant:
        name = "offline"

        def fit(self, normal):
            return Context(profile="offline", config=build_config(profile="offline"))

        def predict(self, image, context):
            m = np.full(image.rgb.shape[:2], 0.25, np.float32)
            return Prediction(path=image.path, score_map=m, mask=m > 0.5, boxes=[], image_score=0.25, profile="offline")

    pipe = Pipeline(build_config(profile="paper", tagger="none", object_name="x"), runner=Constant())
    rgb = np.zeros((8, 8, 3), np.uint8)
    pred = pipe.predict_one(LoadedImage(path="a.png", rgb=rgb, original_size=(8, 8)), Context(profile="offline", config=pipe.config))
    assert pipe.profile == "offline" and pred.image_score == 0.25
    assert {"offline", "paper", "fused"} <= set(profile_names())
    with pytest.raises(SettingsError, match="allowed: .*fused.*offline.*paper"):
        make_runner("nope", build_config(profile="offline"))
