"""The sweep of a killed run's partial files deletes only iapas's own temp files, never another program's."""
from __future__ import annotations

from pathlib import Path

import pytest

from files_support import images, invoke, run_app
from iapas.io.atomic import atomic_write_bytes
from iapas.outputs.writer import remove_stale_temp_files


def foreign_files(home: Path) -> list[Path]:
    """Other programs' temp-looking files in a home-like folder (hidden folders, a project folder)."""
    files = [home / ".config/app/.settings.json.tmp", home / "projects/x/.report.tmp", home / ".draft.tmp",
             home / ".iapas.notes.tmp", home / ".cache/.iapas.a.npy.0a1b2c3d.tmp"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("someone else's")
    return files


def test_sweep_in_a_home_folder_keeps_other_programs_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    keep = foreign_files(home)
    ours = [home / ".iapas.a.npy.0a1b2c3d.tmp", home / "lotA/.iapas.part1.json.deadbeef.tmp"]
    for f in ours:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("half")
    removed = remove_stale_temp_files(home)
    assert sorted(removed) == sorted(ours)
    assert all(f.read_text() == "someone else's" for f in keep)


def test_sweep_does_not_follow_folder_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    theirs = outside / ".iapas.x.json.0a1b2c3d.tmp"
    theirs.write_text("another tree")
    out = tmp_path / "out"
    out.mkdir()
    (out / "linked").symlink_to(outside, target_is_directory=True)
    assert remove_stale_temp_files(out) == []
    assert theirs.exists()


def test_atomic_writes_make_names_the_sweep_recognises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from iapas.io.atomic import is_temp_name

    made: list[str] = []
    real_replace = os.replace

    def spy(src, dst, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        made.append(Path(src).name)
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_bytes(tmp_path / ("n" * 200 + ".json"), b"{}")
    assert made and all(is_temp_name(n) for n in made)
    assert not is_temp_name(".settings.json.tmp") and not is_temp_name(".report.tmp")


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_run_with_out_a_home_folder_leaves_foreign_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    keep = foreign_files(home)
    code, err = invoke(run_app(monkeypatch), "run", "--normal", images(tmp_path / "n", 3), "--images",
                       images(tmp_path / "i", 2, 120), "--out", home, "--profile", "offline")
    assert code == 0, err
    assert all(f.read_text() == "someone else's" for f in keep)
