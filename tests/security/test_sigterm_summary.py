"""SIGTERM at any moment of a run leaves `"interrupted": true` in summary.json (exit status 130)."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from fake_profile import MeanDiffProfile
from files_support import images, invoke, run_app


def terminate_self(*_: object, **__: object) -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_sigterm_while_the_report_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import iapas.outputs.run_report as run_report

    app = run_app(monkeypatch)
    monkeypatch.setattr(run_report, "write_run_report", terminate_self)
    out = tmp_path / "out"
    code, _ = invoke(app, "run", "--normal", images(tmp_path / "n", 3), "--images", images(tmp_path / "i", 3, 120),
                     "--out", out, "--profile", "offline")
    assert code == 130
    s = summary(out)
    assert s["interrupted"] is True and s["complete"] is False


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_sigterm_during_stage1_of_a_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(monkeypatch)
    normal, imgs, out = images(tmp_path / "n", 3), images(tmp_path / "i", 3, 120), tmp_path / "out"
    assert invoke(app, "run", "--normal", normal, "--images", imgs, "--out", out, "--profile", "offline")[0] == 0
    assert summary(out)["interrupted"] is False
    images(normal, 4, 90)  # new normal images: Stage 1 is redone, and killed
    monkeypatch.setattr(MeanDiffProfile, "fit", lambda self, normal: terminate_self())
    code, _ = invoke(app, "run", "--normal", normal, "--images", imgs, "--out", out, "--profile", "offline")
    assert code == 130
    s = summary(out)
    assert s["interrupted"] is True and s["complete"] is False


def test_sigterm_between_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = run_app(monkeypatch)
    real = MeanDiffProfile.predict
    calls = []

    def predict(self, image, context):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 2:
            terminate_self()
        return real(self, image, context)

    monkeypatch.setattr(MeanDiffProfile, "predict", predict)
    out = tmp_path / "out"
    code, _ = invoke(app, "run", "--normal", images(tmp_path / "n", 3), "--images", images(tmp_path / "i", 4, 120),
                     "--out", out, "--profile", "offline")
    assert code == 130
    s = summary(out)
    assert s["interrupted"] is True and s["status_counts"].get("pending", 0) >= 2
