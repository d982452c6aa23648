"""Per-image writer, output names, resume markers, summary, output-folder lock and atomic writes."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iapas.io.scoremaps import load_score_map
from iapas.io.atomic import atomic_write_bytes, atomic_write_json
from iapas.outputs.writer import (
    MAX_NAME_BYTES,
    OutputDirLocked,
    RunSummary,
    is_done,
    lock_output_dir,
    output_names,
    remove_stale_temp_files,
    write_prediction,
)
from iapas.types import Box, Prediction


def _pred(h: int = 20, w: int = 30) -> Prediction:
    score = np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w)
    return Prediction(path="x.png", score_map=score, mask=score > 0.8, boxes=[Box((1, 2, 10, 12), "scratch", 0.7)],
                      image_score=1.0, profile="offline", notes=["downscaled from 60x40 to 30x20"])


# ---------------------------------------------------------------- names

segment = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1,
                  max_size=12).filter(lambda s: s not in (".", ".."))


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
@pytest.mark.parametrize("mirror", [False, True])
@settings(max_examples=150, deadline=None)
@given(specs=st.lists(st.tuples(st.lists(segment, max_size=3), segment, st.sampled_from([".png", ".jpg", ".PNG", ".tif", ""])),
                min_size=1, max_size=12))
def test_output_names_distinct_and_safe(specs: list[tuple[list[str], str, str]], mirror: bool) -> None:
    paths = list(dict.fromkeys(Path("/data", *dirs, stem + suf) for dirs, stem, suf in specs))
    names = output_names(paths, [Path("/data")] if mirror else None)
    assert set(names) == set(paths)
    folded = [n.casefold() for n in names.values()]
    assert len(folded) == len(set(folded)), names  # distinct even on case-insensitive file systems
    for n in names.values():
        parts = n.split("/")
        assert "\x00" not in n and all(x not in ("", ".", "..") for x in parts)
        assert all(len(f".{x}_overlay.png.abcdefgh.tmp".encode()) <= 255 for x in parts)
        assert n.casefold() not in ("summary", "context", "report", "results", "annotations")


def test_output_names_keep_plain_stems_and_widen_only_on_collision() -> None:
    paths = [Path("lot/a.png"), Path("lot/a.jpg"), Path("x/b.png"), Path("y/b.png"), Path("lot/c d ü.png")]
    names = output_names(paths)
    assert names[Path("lot/a.png")] == "a_png" and names[Path("lot/a.jpg")] == "a_jpg"
    assert names[Path("x/b.png")] == "x/b_png" and names[Path("y/b.png")] == "y/b_png"  # folder as sub-folder
    assert names[Path("lot/c d ü.png")] == "c_d_ü"


def test_nested_input_folders_are_mirrored_and_clashes_stay_stable() -> None:
    root = Path("in")
    paths = [root / "lotA" / "part1.png", root / "lotA" / "part1.jpg", root / "lotB" / "part1.png",
             root / "top.png", root / "report_assets" / "x.png", Path("elsewhere/top.png")]
    names = output_names(paths, [root])
    assert names[root / "lotB" / "part1.png"] == "lotB/part1"  # mirrored, no flattening prefix
    assert names[root / "lotA" / "part1.png"] == "lotA/part1_png" and names[root / "lotA" / "part1.jpg"] == "lotA/part1_jpg"
    assert names[root / "report_assets" / "x.png"] == "report_assets_input/x"  # never inside the report's own folder
    assert names[root / "top.png"] == "top_png__1" or names[root / "top.png"] == "in/top_png"
    assert len({n.casefold() for n in names.values()}) == len(paths)
    assert output_names(list(reversed(paths)), [root])[root / "lotB" / "part1.png"] == "lotB/part1"


def test_nested_outputs_are_written_in_sub_folders_and_found_done(tmp_path: Path) -> None:
    files = write_prediction(tmp_path, "lotA/part1", np.zeros((20, 30, 3), np.uint8), _pred(), "d1")
    assert (tmp_path / "lotA" / "part1_overlay.png").is_file() and (tmp_path / files["thumb"]).is_file()
    assert is_done(tmp_path, "lotA/part1", "d1")


def test_reserved_and_long_names() -> None:
    names = output_names([Path("summary.png"), Path("Context.png"), Path("a" * 300 + ".png"), Path("a" * 299 + "b.png"),
                          Path("results.png"), Path("report.png")])
    assert names[Path("summary.png")] == "summary_input" and names[Path("Context.png")] == "Context_input"
    assert names[Path("results.png")] == "results_input" and names[Path("report.png")] == "report_input"
    long_names = [names[Path("a" * 300 + ".png")], names[Path("a" * 299 + "b.png")]]
    assert len(set(long_names)) == 2 and all(len(n.encode()) <= MAX_NAME_BYTES for n in long_names)


# ---------------------------------------------------------------- write / resume


def test_write_prediction_files_and_done_marker(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(b"pretend image")
    files = write_prediction(tmp_path / "out", "in", np.zeros((20, 30, 3), np.uint8), _pred(), "d1", source=src,
                             original_size=(60, 40))
    out = tmp_path / "out"
    meta = json.loads((out / files["json"]).read_text())
    assert meta["settings_digest"] == "d1" and meta["original_size"] == [60, 40] and meta["size"] == [30, 20]
    assert meta["notes"] == ["downscaled from 60x40 to 30x20"] and meta["boxes"][0]["phrase"] == "scratch"
    assert files["score_map"] == "in.npz" and load_score_map(out / "in.npz").dtype == np.float32
    assert is_done(out, "in", "d1", source=src)
    assert not is_done(out, "in", "other-settings", source=src)
    src.write_bytes(b"a different image")  # same name, new content: must be redone
    assert not is_done(out, "in", "d1", source=src)
    assert is_done(out, "in", "d1")  # without a source only the settings count
    (out / "in_mask.png").unlink()  # a missing sibling file means not done
    assert not is_done(out, "in", "d1")
    (out / "in.json").write_text('{"settings_digest": "d1", "fil')  # torn JSON (never by us, but by a copy tool)
    assert not is_done(out, "in", "d1")


def test_summary_counts_failures_and_interrupted(tmp_path: Path) -> None:
    s = RunSummary(out_dir=tmp_path, profile="offline", settings_digest="d")
    s.record(Path("a.png"), "a", "ok", image_score=0.5)
    s.record(Path("b.png"), "b", "failed", error="truncated image file")
    s.record(Path("c.png"), "c", "pending")
    s.interrupted = True
    data = json.loads(s.save().read_text())
    assert data["status_counts"] == {"ok": 1, "failed": 1, "pending": 1}
    assert data["failures"] == [{"path": "b.png", "error": "truncated image file"}]
    assert data["interrupted"] is True and data["complete"] is False


# ---------------------------------------------------------------- lock and partial files


def _hold_lock(folder: str, ready: "multiprocessing.synchronize.Event") -> None:
    with lock_output_dir(Path(folder)):
        ready.set()
        time.sleep(60)


def test_lock_refuses_live_writer_and_is_freed_by_kill(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready))
    proc.start()
    try:
        assert ready.wait(20)
        with pytest.raises(OutputDirLocked, match=f"pid {proc.pid}"):
            with lock_output_dir(tmp_path):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # a killed run must not block the rerun
        proc.join(10)
    with lock_output_dir(tmp_path):
        pass


def test_remove_stale_temp_files_only_touches_partials(tmp_path: Path) -> None:
    (tmp_path / ".iapas.a.npy.0a1b2c3d.tmp").write_bytes(b"half")
    (tmp_path / ".a.npy.k2j3.tmp").write_bytes(b"x")  # not ours (no iapas prefix)
    (tmp_path / "keep.tmp.png").write_bytes(b"x")
    (tmp_path / "user.tmp").write_bytes(b"x")  # not ours (not hidden)
    removed = remove_stale_temp_files(tmp_path)
    assert [p.name for p in removed] == [".iapas.a.npy.0a1b2c3d.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.npy.k2j3.tmp", "keep.tmp.png", "user.tmp"]


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    atomic_write_json(target, {"v": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        atomic_write_json(target, {"v": Boom()})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_atomic_write_killed_midway_never_exposes_partial_file(tmp_path: Path) -> None:
    """A process killed while writing big outputs leaves the previous complete file or none, never a torn one."""
    target = tmp_path / "big.bin"
    atomic_write_bytes(target, b"A" * 1000)
    ctx = multiprocessing.get_context("fork")

    def writer() -> None:
        while True:
            atomic_write_bytes(target, b"B" * 20_000_000)

    proc = ctx.Process(target=writer)
    proc.start()
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    data = target.read_bytes()
    assert data in (b"A" * 1000, b"B" * 20_000_000)
    remove_stale_temp_files(tmp_path)  # partials, if any, are cleaned by the next run
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"]


def test_non_utf8_path_in_json_does_not_crash(tmp_path: Path) -> None:
    name = os.fsdecode(b"lot\xff.png")  # surrogate-escaped str, as os.listdir returns it
    atomic_write_json(tmp_path / "s.json", {"path": name})
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["path"] == "lot\ufffd.png"


def test_overlay_failure_falls_back_to_plain_overlay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import iapas.outputs.overlay as overlay

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ValueError("y1 must be greater than or equal to y0")

    monkeypatch.setattr(overlay, "render_overlay", broken)
    pred = _pred()
    files = write_prediction(tmp_path, "strip", np.full((20, 30, 3), 100, np.uint8), pred, "d")
    meta = json.loads((tmp_path / files["json"]).read_text())
    assert any("overlay drawn in plain form" in n for n in meta["notes"])
    from PIL import Image

    ov = np.asarray(Image.open(tmp_path / files["overlay"]))
    assert ov.shape == (20, 30, 3) and (ov[pred.mask][:, 0] > ov[~pred.mask][:, 0].max()).all()
    assert is_done(tmp_path, "strip", "d")
