"""The output folder's lock file never writes through a link nor truncates a file iapas did not make."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from files_support import images, invoke, run_app
from iapas.outputs.writer import lock_output_dir


def test_lock_symlink_to_a_victim_file_is_refused_and_the_victim_kept(tmp_path: Path) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_text("precious settings\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".iapas.lock").symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        with lock_output_dir(out):
            pass
    assert victim.read_text() == "precious settings\n"


def test_dangling_lock_symlink_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "created-by-iapas"
    target.parent.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / ".iapas.lock").symlink_to(target)
    with pytest.raises(OSError):
        with lock_output_dir(out):
            pass
    assert not target.exists()


@pytest.mark.parametrize("kind", ["hardlink", "foreign_content", "folder"])
def test_lock_that_is_not_ours_is_refused_untouched(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("not a pid, keep me\n")
    lock = out / ".iapas.lock"
    if kind == "hardlink":
        os.link(victim, lock)
    elif kind == "foreign_content":
        lock.write_text("not a pid, keep me\n")
    else:
        lock.mkdir()
    with pytest.raises(OSError):
        with lock_output_dir(out):
            pass
    assert victim.read_text() == "not a pid, keep me\n"
    if kind == "foreign_content":
        assert lock.read_text() == "not a pid, keep me\n"


def test_own_lock_file_is_reused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with lock_output_dir(out):
        pass
    with lock_output_dir(out):  # the file holding the last pid is ours: taken again
        assert (out / ".iapas.lock").read_text() == str(os.getpid())


def test_cli_run_with_planted_lock_link_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".iapas.lock").symlink_to(victim)
    code, err = invoke(run_app(monkeypatch), "run", "--normal", images(tmp_path / "n", 3), "--images",
                       images(tmp_path / "i", 2, 120), "--out", out, "--profile", "offline")
    assert code == 2 and ".iapas.lock" in err and "symbolic link" in err
    assert victim.read_text() == "precious\n"
