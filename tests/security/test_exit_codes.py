"""Issue 12, item 10: file-system trouble and odd settings end with a documented exit status and one line,
never a traceback: read-only output folder, disk full while writing the context or summary.json, `--out`
below a regular file (run, prompts, demo, compare), a 245-byte `--out` name, `llm_timeout: .inf`."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers

from cli_apps import command_app  # noqa: E402
from fake_profile import use_mean_diff  # noqa: E402
from iapas.cli import compare as compare_cmd  # noqa: E402
from iapas.cli import demo as demo_cmd  # noqa: E402
from iapas.cli import run as run_cmd  # noqa: E402

FAKE_CLI = Path(__file__).resolve().parents[1] / "fake_cli.py"


def images(folder: Path, n: int, grey: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((20, 20, 3), grey + 20 * i, np.uint8)).save(folder / f"i{i}.png")
    return folder


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    use_mean_diff(monkeypatch)
    return command_app(run_cmd, demo_cmd, compare_cmd)


def invoke(app, *args: object) -> tuple[int, str]:  # noqa: ANN001
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.stderr
    return result.exit_code, result.stderr


def no_space_for(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """os.replace onto `name` fails as on a full disk (the write itself went to a temp file)."""
    real = os.replace

    def replace(src, dst, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if Path(dst).name == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)


def test_item10_disk_full_on_context_or_summary_is_exit_4(app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    normal, imgs = images(tmp_path / "normal", 3), images(tmp_path / "imgs", 2, 120)
    for target in ("context.json", "summary.json"):
        with monkeypatch.context() as m:
            no_space_for(m, target)
            code, err = invoke(app, "run", "--normal", normal, "--images", imgs, "--out", tmp_path / target,
                               "--profile", "offline")
        assert code == 4, err
        assert "No space left on device" in err and target in err
        assert not list((tmp_path / target).glob(".*.tmp"))  # no partial file left behind


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_item10_out_below_a_regular_file_is_exit_2(app, tmp_path: Path) -> None:  # noqa: ANN001
    normal, imgs = images(tmp_path / "normal", 3), images(tmp_path / "imgs", 2, 120)
    blocker = tmp_path / "plain.txt"
    blocker.write_text("a file, not a folder")
    for name in ("r1", "r2"):  # two result folders for compare
        assert invoke(app, "run", "--normal", normal, "--images", imgs, "--out", tmp_path / name, "--profile", "offline")[0] == 0
    commands = {
        "run": ["run", "--normal", normal, "--images", imgs, "--out", blocker / "sub", "--profile", "offline"],
        "prompts": ["prompts", "--normal", normal, "--out", blocker / "sub" / "context.json", "--profile", "offline"],
        "demo": ["demo", "--out", blocker / "sub", "--n-test", "2"],
        "compare": ["compare", tmp_path / "r1", tmp_path / "r2", "--out", blocker / "sub"],
    }
    for name, args in commands.items():
        code, err = invoke(app, *args)
        assert code == 2, (name, err)
        assert "plain.txt" in err and "Not a directory" in err, (name, err)
    assert blocker.read_text() == "a file, not a folder"


def test_item10_long_out_name_works(app, tmp_path: Path) -> None:  # noqa: ANN001
    normal = images(tmp_path / "normal", 3)
    name = "c" * 240 + ".json"  # 245 bytes: fits the 255-byte limit, a '.NAME.xxxxxxxx.tmp' temp name would not
    code, err = invoke(app, "prompts", "--normal", normal, "--out", tmp_path / name, "--profile", "offline")
    assert code == 0, err
    assert json.loads((tmp_path / name).read_text())["profile"] == "offline"
    too_long = "d" * 300 + ".json"
    code, err = invoke(app, "prompts", "--normal", normal, "--out", tmp_path / too_long, "--profile", "offline")
    assert code == 2 and ("File name too long" in err or "longer than" in err), err


def test_item10_infinite_timeout_in_config_is_exit_2(app, tmp_path: Path) -> None:  # noqa: ANN001
    normal, imgs = images(tmp_path / "normal", 3), images(tmp_path / "imgs", 1, 120)
    for value in (".inf", ".nan", "-.inf"):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"llm_timeout: {value}\n")
        code, err = invoke(app, "run", "--normal", normal, "--images", imgs, "--out", tmp_path / "o", "--config", cfg,
                           "--profile", "offline")
        assert code == 2 and "llm_timeout" in err and "finite" in err, (value, err)


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_item10_read_only_output_folder_is_exit_2(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="iapas-ro-"))
    try:
        os.chmod(base, 0o755)
        normal, imgs = images(base / "normal", 3), images(base / "imgs", 1, 120)
        out = base / "out"
        out.mkdir()
        for p in base.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(out, 0o555)
        cmd = [sys.executable, str(FAKE_CLI), "run", "--normal", str(normal), "--images", str(imgs), "--out", str(out),
               "--profile", "offline"]
        if os.geteuid() == 0:  # root ignores file modes: run as nobody
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=base,
                             env={**os.environ, "HOME": str(base), "HF_HUB_OFFLINE": "1"})
        assert res.returncode == 2, res.stderr[-2000:]
        assert "Permission denied" in res.stderr and "Traceback" not in res.stderr
        assert str(out) in res.stderr.replace("\n", "")
    finally:
        shutil.rmtree(base, ignore_errors=True)
