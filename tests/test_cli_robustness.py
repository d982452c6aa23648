"""The generated corpus of bad and odd inputs through `iapas run` / `segment` (issue 6).

A tiny real profile (tests/fake_profile.py) replaces model loading so these run in-process in seconds;
tests/test_resume.py drives the real offline profile in a subprocess.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import typer

from PIL import Image
from typer.testing import CliRunner

from cli_apps import command_app
from corpus import Case, build_corpus, encode, pattern, write_normals
from fake_profile import MeanDiffProfile, use_mean_diff
from iapas.io.scoremaps import load_score_map
from iapas.cli import run as run_cmd
from iapas.cli.app import EPILOG
from iapas.outputs.writer import lock_output_dir

pytestmark = pytest.mark.slow  # end to end: left out of the `-m "not slow"` loop, run in CI

IS_ROOT = os.geteuid() == 0


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(run_cmd, epilog=EPILOG)


def invoke(app: typer.Typer, *args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, list[Case]]:
    write_normals(tmp_path / "normal")
    return tmp_path, build_corpus(tmp_path)


def test_corpus_through_run_reports_each_bad_file_and_keeps_going(app: typer.Typer, data: tuple[Path, list[Case]]) -> None:
    root, cases = data
    out = root / "out"
    code, _, err = invoke(app, "run", "--normal", root / "normal", "--images", root / "images", "--out", out,
                          "--profile", "offline")
    assert code == 3, err  # some failed, the rest processed
    s = summary(out)
    by_path = {i["path"]: i for i in s["inputs"]}
    failed = {f["path"] for f in s["failures"]}
    for case in cases:
        item = by_path[str(case.path)]
        if case.ok or (case.needs_unprivileged and IS_ROOT):
            assert item["status"] == "ok", item
            meta = json.loads((out / f"{item['name']}.json").read_text(encoding="utf-8"))
            assert meta["path"] == str(case.path)
            if case.size:
                assert meta["size"] == list(case.size) and meta["original_size"] == list(case.size)
                assert load_score_map(out / meta["files"]["score_map"]).shape == (case.size[1], case.size[0])
            if case.note:
                assert any(case.note in n for n in meta["notes"])
        else:
            assert item["status"] == "failed" and case.reason in item["error"], item
            assert str(case.path) in failed
            assert case.path.name in err and case.reason in err  # on stderr too, file and reason
    assert s["complete"] is True and s["interrupted"] is False
    assert s["status_counts"]["failed"] == len(s["failures"]) > 0
    # inputs differing only by extension or folder got separate outputs, none overwritten
    names = [i["name"] for i in s["inputs"]]
    assert len(names) == len(set(n.casefold() for n in names))
    same = [i for i in s["inputs"] if Path(i["path"]).stem == "same"]
    assert len(same) == 4
    maps = [load_score_map(out / f"{i['name']}.npz") for i in same]
    assert all(not np.array_equal(maps[0], m) for m in maps[1:])
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_all_bad_inputs_exit_4_all_good_exit_0(app: typer.Typer, data: tuple[Path, list[Case]]) -> None:
    root, cases = data
    bad = [str(c.path) for c in cases if not c.ok and not c.needs_unprivileged]
    good = [str(c.path) for c in cases if c.ok]
    code, _, err = invoke(app, "run", "--normal", root / "normal", "--images", *bad, "--out", root / "o1",
                          "--profile", "offline")
    assert code == 4, err
    assert summary(root / "o1")["status_counts"] == {"failed": len(bad)}
    code, _, err = invoke(app, "run", "--normal", root / "normal", "--images", *good, "--out", root / "o2",
                          "--profile", "offline")
    assert code == 0, err
    assert summary(root / "o2")["status_counts"] == {"ok": len(good)} and summary(root / "o2")["failures"] == []


def test_missing_explicit_file_is_a_per_file_failure(app: typer.Typer, data: tuple[Path, list[Case]]) -> None:
    root, cases = data
    good = next(c for c in cases if c.ok)
    code, _, err = invoke(app, "run", "--normal", root / "normal", "--images", good.path, root / "nope.png",
                          "--out", root / "o", "--profile", "offline")
    assert code == 3
    assert "file does not exist" in summary(root / "o")["failures"][0]["error"]


def test_rerun_reuses_results_and_redoes_changed_inputs(app: typer.Typer, tmp_path: Path) -> None:
    write_normals(tmp_path / "normal")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        Image.fromarray(pattern(32, 40, seed=10 + i)).save(imgs / f"p{i}.png")
    args = ("run", "--normal", tmp_path / "normal", "--images", imgs, "--out", tmp_path / "out", "--profile", "offline")
    assert invoke(app, *args)[0] == 0
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    MeanDiffProfile.predictions = 0
    code, _, err = invoke(app, *args)
    assert code == 0 and MeanDiffProfile.predictions == 0
    assert "3 reused" in err
    assert all(i.get("cached") for i in summary(tmp_path / "out")["inputs"])
    for name in ("p0.npz", "p1.json", "p2_overlay.png"):
        assert (tmp_path / "out" / name).stat().st_mtime_ns == first[name]
    # a changed input file is processed again, the others are still reused
    Image.fromarray(pattern(32, 40, seed=99)).save(imgs / "p1.png")
    os.utime(imgs / "p1.png", ns=(1, 1))
    code, _, _ = invoke(app, *args)
    assert code == 0 and MeanDiffProfile.predictions == 1
    cached = {Path(i["path"]).name: bool(i.get("cached")) for i in summary(tmp_path / "out")["inputs"]}
    assert cached == {"p0.png": True, "p1.png": False, "p2.png": True}


def test_output_folder_inside_input_folder_is_not_read_back(app: typer.Typer, tmp_path: Path) -> None:
    write_normals(tmp_path / "normal")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(pattern(32, 40)).save(imgs / "a.png")
    args = ("run", "--normal", tmp_path / "normal", "--images", imgs, "--out", imgs / "results", "--profile", "offline")
    assert invoke(app, *args)[0] == 0
    assert invoke(app, *args)[0] == 0
    assert [i["path"] for i in summary(imgs / "results")["inputs"]] == [str(imgs / "a.png")]


def test_interrupt_saves_summary_exits_130_and_rerun_completes(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_normals(tmp_path / "normal")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(5):
        Image.fromarray(pattern(32, 40, seed=i)).save(imgs / f"p{i}.png")
    real_predict = MeanDiffProfile.predict

    def ctrl_c_on_third(self: MeanDiffProfile, image, context):  # type: ignore[no-untyped-def]
        if MeanDiffProfile.predictions == 2:
            raise KeyboardInterrupt
        return real_predict(self, image, context)

    monkeypatch.setattr(MeanDiffProfile, "predict", ctrl_c_on_third)
    args = ("run", "--normal", tmp_path / "normal", "--images", imgs, "--out", tmp_path / "out", "--profile", "offline")
    code, _, err = invoke(app, *args)
    assert code == 130 and "interrupted" in err and "rerun the same command" in err
    s = summary(tmp_path / "out")
    assert s["interrupted"] is True and s["complete"] is False
    assert s["status_counts"] == {"ok": 2, "pending": 3}
    monkeypatch.setattr(MeanDiffProfile, "predict", real_predict)
    code, _, _ = invoke(app, *args)
    s = summary(tmp_path / "out")
    assert code == 0 and s["complete"] is True and s["status_counts"] == {"ok": 5}
    assert sum(bool(i.get("cached")) for i in s["inputs"]) == 2


def test_sigterm_handler_turns_into_clean_interrupt(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    write_normals(tmp_path / "normal")
    real_predict = MeanDiffProfile.predict

    def terminated(self, image, context):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to our handler, which raises KeyboardInterrupt
        return real_predict(self, image, context)

    monkeypatch.setattr(MeanDiffProfile, "predict", terminated)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = invoke(app, "run", "--normal", tmp_path / "normal", "--images", tmp_path / "normal",
                          "--out", tmp_path / "out", "--profile", "offline")
    assert code == 130 and "interrupted" in err
    assert summary(tmp_path / "out")["interrupted"] is True
    assert signal.getsignal(signal.SIGTERM) == before  # handler restored after the command


def test_second_live_writer_is_refused_and_stale_temp_files_removed(app: typer.Typer, tmp_path: Path) -> None:
    write_normals(tmp_path / "normal")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".iapas.a.npy.0a1b2c3d.tmp").write_bytes(b"half")
    args = ("run", "--normal", tmp_path / "normal", "--images", tmp_path / "normal", "--out", out, "--profile", "offline")
    with lock_output_dir(out):
        code, _, err = invoke(app, *args)
        assert code == 2 and "another iapas process" in err and MeanDiffProfile.instances == 0
    code, _, err = invoke(app, *args)
    assert code == 0 and "removed 1 partial file" in err
    assert not (out / ".iapas.a.npy.0a1b2c3d.tmp").exists()


def test_non_utf8_file_name_is_processed_and_reported(app: typer.Typer, tmp_path: Path) -> None:
    write_normals(tmp_path / "normal")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    raw = os.path.join(os.fsencode(imgs), b"lot\xff 7.png")
    with open(raw, "wb") as fh:
        fh.write(encode(Image.fromarray(pattern(32, 40)), "PNG"))
    code, _, err = invoke(app, "run", "--normal", tmp_path / "normal", "--images", imgs, "--out", tmp_path / "out",
                          "--profile", "offline")
    assert code == 0, err
    item = summary(tmp_path / "out")["inputs"][0]
    assert item["status"] == "ok" and "\ufffd" in item["path"]


def test_segment_reuses_context_and_reports_failures(app: typer.Typer, data: tuple[Path, list[Case]]) -> None:
    root, cases = data
    assert invoke(app, "prompts", "--normal", root / "normal", "--out", root / "ctx.json", "--profile", "offline")[0] == 0
    bad = next(c for c in cases if c.path.name == "truncated.jpg")
    good = next(c for c in cases if c.path.name == "gray16.png")
    code, _, err = invoke(app, "segment", "--context", root / "ctx.json", "--images", good.path, bad.path,
                          "--out", root / "seg")
    assert code == 3 and "truncated.jpg" in err
    s = summary(root / "seg")
    assert [i["status"] for i in s["inputs"]] == ["ok", "failed"]


@pytest.mark.parametrize("command", ["run", "prompts", "segment"])
def test_help_shows_examples_and_exit_statuses(app: typer.Typer, command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = result.output
    assert "Examples:" in text and f"iapas {command} " in text
    for code in ("0 all inputs processed", "3 some inputs failed", "4 nothing could be processed",
                 "2 invalid settings", "130 interrupted"):
        assert code in text, code


# ---------------------------------------------------------------- evaluate: per-file failures


def _mvtec(root: Path) -> dict[str, Path]:
    """A tiny MVTec-layout category with one missing mask, one wrong-size mask and one truncated image."""
    cat = root / "widget"
    for i in range(4):
        p = cat / "train" / "good" / f"{i:03d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pattern(48, 64, seed=i)).save(p)
    (cat / "test" / "good").mkdir(parents=True)
    (cat / "test" / "crack").mkdir(parents=True)
    (cat / "ground_truth" / "crack").mkdir(parents=True)
    Image.fromarray(pattern(48, 64, seed=7)).save(cat / "test" / "good" / "000.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[10:20, 10:30] = 255
    for name in ("ok", "no_mask", "bad_size", "truncated"):
        img = pattern(48, 64, seed=20)
        img[10:20, 10:30] = 255
        data = encode(Image.fromarray(img), "PNG")
        (cat / "test" / "crack" / f"{name}.png").write_bytes(data[: len(data) // 2] if name == "truncated" else data)
        if name == "bad_size":
            Image.fromarray(mask[:40]).save(cat / "ground_truth" / "crack" / f"{name}_mask.png")
        elif name != "no_mask":
            Image.fromarray(mask).save(cat / "ground_truth" / "crack" / f"{name}_mask.png")
    return {n: cat / "test" / "crack" / f"{n}.png" for n in ("ok", "no_mask", "bad_size", "truncated")}


@pytest.fixture()
def eval_app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    from iapas.cli import evaluate as eval_cmd

    use_mean_diff(monkeypatch)
    return command_app(eval_cmd)


def test_evaluate_records_mask_problems_per_file_and_goes_on(eval_app: typer.Typer, tmp_path: Path) -> None:
    files = _mvtec(tmp_path / "mv")
    out = tmp_path / "ev"
    code, _, err = invoke(eval_app, "evaluate", "--dataset", "mvtec", "--root", tmp_path / "mv", "--out", out,
                          "--profile", "offline", "--eval-size", "32")
    assert code == 3, err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    reasons = {Path(f["image"]).stem: f["error"] for f in metrics["failures"]}
    assert set(reasons) == {"no_mask", "bad_size", "truncated"}
    assert "mask file is missing" in reasons["no_mask"]
    assert "differs" in reasons["bad_size"] and "64x40" in reasons["bad_size"]
    assert "truncated" in reasons["truncated"]
    assert metrics["categories"]["widget"]["n_images"] == 2  # the good image and the one with a proper mask
    assert files["ok"].exists()


def test_evaluate_unknown_dataset_and_help(eval_app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = invoke(eval_app, "evaluate", "--dataset", "mvtek", "--root", tmp_path, "--out", tmp_path / "o")
    assert code == 2 and "unknown dataset 'mvtek'" in err and "mvtec" in err and "allowed" in err
    assert MeanDiffProfile.instances == 0
    assert not (tmp_path / "o").exists(), "settings are rejected before the output folder is created"
    result = CliRunner().invoke(eval_app, ["evaluate", "--help"], env={"COLUMNS": "200"})
    assert "Examples:" in result.output and "iapas evaluate --dataset" in result.output
    for code_text in ("3 some inputs failed", "4 nothing could be processed", "2 invalid settings", "130 interrupted"):
        assert code_text in result.output, code_text


def test_very_large_image_is_downscaled_and_says_so(app: typer.Typer, tmp_path: Path) -> None:
    write_normals(tmp_path / "normal")
    big = tmp_path / "imgs" / "scan 12000x9000.jpg"
    big.parent.mkdir()
    Image.fromarray(pattern(90, 120)).resize((12000, 9000)).save(big, quality=60)
    code, _, err = invoke(app, "run", "--normal", tmp_path / "normal", "--images", big, "--out", tmp_path / "out",
                          "--profile", "offline")
    assert code == 0, err
    item = summary(tmp_path / "out")["inputs"][0]
    meta = json.loads((tmp_path / "out" / f"{item['name']}.json").read_text(encoding="utf-8"))
    assert meta["original_size"] == [12000, 9000] and meta["size"] == [4096, 3072]
    assert any("downscaled from 12000x9000 to 4096x3072" in n for n in meta["notes"])
    assert any("downscaled" in n for n in item["notes"])


def test_unreadable_file_through_cli_as_unprivileged_user(tmp_path: Path) -> None:
    """chmod 000 input: a per-file 'permission denied' while the rest is processed (as user nobody when root)."""
    import subprocess
    import sys
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="iapas-perm-cli-"))
    try:
        os.chmod(base, 0o777)
        write_normals(base / "normal", n=3)
        imgs = base / "imgs"
        imgs.mkdir()
        Image.fromarray(pattern(32, 40)).save(imgs / "fine.png")
        Image.fromarray(pattern(32, 40, seed=3)).save(imgs / "locked.png")
        for p in base.rglob("*"):
            os.chmod(p, 0o777 if p.is_dir() else 0o644)
        os.chmod(imgs / "locked.png", 0)
        cmd = [sys.executable, str(Path(__file__).parent / "fake_cli.py"), "run", "--normal", str(base / "normal"),
               "--images", str(imgs), "--out", str(base / "out"), "--profile", "offline"]
        if IS_ROOT:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=base,
                             env={**os.environ, "HOME": str(base), "HF_HUB_OFFLINE": "1"})
        assert res.returncode == 3, res.stderr[-2000:]
        s = summary(base / "out")
        status = {Path(i["path"]).name: (i["status"], i.get("error", "")) for i in s["inputs"]}
        assert status["fine.png"][0] == "ok"
        assert status["locked.png"][0] == "failed" and "permission denied" in status["locked.png"][1]
        assert "locked.png" in res.stderr and "permission denied" in res.stderr
    finally:
        import shutil

        os.chmod(imgs / "locked.png", 0o644)
        shutil.rmtree(base, ignore_errors=True)
