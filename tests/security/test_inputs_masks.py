"""Issue 14 (inputs): mask-like files beside the photos are neither normal images nor images to check."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image

from cli_apps import command_app
from fake_profile import use_mean_diff
from inputs_support import context, invoke, photo, summary
from iapas.cli import run as run_cmd
from synthetic_layouts import make_mtd


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(run_cmd)


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_normal_folder_of_photos_with_their_mask_pngs_uses_only_the_photos(app: typer.Typer, tmp_path: Path) -> None:
    make_mtd(tmp_path / "mtd", n_free=6)  # MT_Free/Imgs: x.jpg photos beside black x.png masks
    free = tmp_path / "mtd" / "MT_Free" / "Imgs"
    photos = sorted(str(p) for p in free.glob("*.jpg"))
    masks = sorted(free.glob("*.png"))
    assert len(photos) == len(masks) == 6
    out = tmp_path / "out"
    code, output = invoke(app, "run", "--normal", free, "--images", tmp_path / "mtd" / "MT_Crack" / "Imgs",
                          "--out", out)
    assert code == 0, output
    assert sorted(context(out / "context.json")["normal_images"]) == photos
    text = " ".join(output.split())
    assert "skipped 6 mask-like files" in text, text  # --normal
    assert "--images: skipped 2 mask-like files" in text, text  # MT_Crack: 2 photos + 2 fringe masks
    checked = [i["path"] for i in summary(out)["inputs"]]
    assert checked and all(p.endswith(".jpg") for p in checked), checked


def test_mask_named_files_and_binary_siblings_are_skipped_but_grey_photos_are_kept(app: typer.Typer, tmp_path: Path) -> None:
    good = tmp_path / "good"
    for i in range(3):
        photo(good / f"p{i}.png", seed=i)
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(good / "p0_mask.png")
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(good / "p1_GT.bmp")
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(good / "P2_Label.png")
    photo(good / "lone.jpg", seed=7)
    binary = np.zeros((48, 64), np.uint8)
    binary[10:20, 10:30] = 255
    Image.fromarray(binary).save(good / "lone.png")  # binary single-channel sibling of a photo: a mask
    grey = (np.random.default_rng(1).random((48, 64)) * 255).astype(np.uint8)
    Image.fromarray(grey).save(good / "grey.png")  # a grey photo with no sibling: kept
    photo(good / "twin.jpg", seed=8)
    Image.fromarray(grey).save(good / "twin.png")  # grey, not binary: kept although it shares the stem
    out = tmp_path / "ctx.json"
    code, output = invoke(app, "prompts", "--normal", good, "--out", out)
    assert code == 0, output
    used = sorted(Path(p).name for p in context(out)["normal_images"])
    assert used == ["grey.png", "lone.jpg", "p0.png", "p1.png", "p2.png", "twin.jpg", "twin.png"], used
    assert "skipped 4 mask-like files" in " ".join(output.split())


def test_explicit_mask_file_is_kept_as_given(app: typer.Typer, tmp_path: Path) -> None:
    good = tmp_path / "good"
    for i in range(3):
        photo(good / f"p{i}.png", seed=i)
    m = tmp_path / "x_mask.png"
    Image.fromarray(np.full((48, 64), 255, np.uint8)).save(m)
    code, output = invoke(app, "run", "--normal", good, "--images", m, "--out", tmp_path / "o", "-r", "3")
    assert code == 0, output
    assert [i["path"] for i in summary(tmp_path / "o")["inputs"]] == [str(m)]
