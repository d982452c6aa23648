"""Invalid settings are rejected with exit status 2, the allowed values, and before any model loads."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from typer.testing import CliRunner

from cli_apps import command_app
from corpus import write_normals
from fake_profile import MeanDiffProfile, use_mean_diff
from iapas.cli import run as run_cmd
from iapas.config import build_config
from iapas.errors import SettingsError
from iapas.pipeline import Pipeline
from iapas.preflight import ModelsMissing, check_models, missing_models, model_roles



@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(run_cmd)


@pytest.fixture()
def normal(tmp_path: Path) -> Path:
    write_normals(tmp_path / "normal", n=4)
    return tmp_path / "normal"


def run_args(normal: Path, tmp: Path, *extra: str) -> list[str]:
    return ["run", "--normal", str(normal), "--images", str(normal), "--out", str(tmp / "out"), *extra]


# One table of invalid values: each is refused by the API (build_config, or Pipeline for the profile) with the field, its flag and the
# allowed values, and by `iapas run` with exit 2 before any profile (hence model) is built. `None` in the
# settings column: only the CLI can tell (it needs the normal folder, or the flag's own parser).
INVALID = [
    ({"box_threshold": 1.5}, ["--box-threshold", "1.5"], "box_threshold (--box-threshold)", "allowed: [0, 1]"),
    ({"text_threshold": -0.1}, ["--text-threshold", "-0.1"], "text_threshold (--text-threshold)", "allowed: [0, 1]"),
    ({"size_threshold": 0.0}, ["--size-threshold", "0"], "size_threshold (--size-threshold)", "allowed: (0, 1]"),
    ({"num_normal": 0}, ["--num-normal", "0"], "num_normal (--num-normal)", "allowed: [1, inf)"),
    (None, ["--num-normal", "5"], "--num-normal", "allowed: 1..4"),
    ({"profile": "gpu"}, ["--profile", "gpu"], "profile (--profile)", "allowed: 'fused', "),
    ({"kind": "liquid"}, ["--kind", "liquid"], "kind (--kind)", "'object' or 'texture'"),
    ({"dtype": "int3"}, ["--dtype", "int3"], "dtype (--dtype)", "'float32'"),
    ({"detector": "  "}, ["--detector", "  "], "detector (--detector)", "a model reference cannot be empty"),
    ({"profile": "paper", "tagger": "none"}, ["--profile", "paper", "--tagger", "none"], "--tagger none", "needs --object"),
]


@pytest.mark.parametrize(("settings", "flags", "field", "allowed"), INVALID, ids=[" ".join(c[1]) for c in INVALID])
def test_invalid_value_is_refused_by_the_api_and_by_the_cli(app: typer.Typer, normal: Path, tmp_path: Path,
                                                            settings: dict | None, flags: list[str], field: str,
                                                            allowed: str) -> None:
    if settings is not None:  # the profile's name and its needs are checked against the registry by Pipeline
        with pytest.raises(SettingsError) as info:
            Pipeline(build_config(**settings))
        assert field in str(info.value) and allowed in str(info.value)
    result = CliRunner().invoke(app, [*run_args(normal, tmp_path, "--profile", "offline"), *flags])
    assert result.exit_code == 2, result.output
    assert field in result.stderr and allowed in result.stderr, result.stderr
    assert MeanDiffProfile.instances == 0  # no profile (hence no model) was built
    assert not (tmp_path / "out").exists()  # nothing written either


def test_empty_or_missing_normal_folder(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    for folder, expected in ((tmp_path / "empty", "holds no images"), (tmp_path / "nope", "does not exist")):
        result = CliRunner().invoke(app, run_args(folder, tmp_path, "--profile", "offline"))
        assert result.exit_code == 2 and expected in result.stderr
        assert "PNG, JPEG" in result.stderr or expected == "does not exist"
    assert MeanDiffProfile.instances == 0


# One table of config-file errors (file name, content or None for a missing file, message); `cli` marks the
# one only `run` can tell (num_normal against the 4 images of the normal folder).
CONFIG_FILE_ERRORS = [
    ("bad.yaml", "box_threshold: 2\n", "allowed: [0, 1]", False),
    ("typo.yaml", "box_treshold: 0.3\n", "box_treshold", False),
    ("unknown.toml", "colour = 3\n", "colour", False),
    ("list.yaml", "- a\n- b\n", "mapping", False),
    ("broken.yaml", "box_threshold: [0.2\n", "cannot be parsed", False),
    ("missing.yaml", None, "does not exist", False),
    ("r.toml", "num_normal = 9\n", "allowed: 1..4", True),
]


@pytest.mark.parametrize(("name", "content", "expected", "cli_only"), CONFIG_FILE_ERRORS,
                         ids=[c[0] for c in CONFIG_FILE_ERRORS])
def test_config_file_errors(app: typer.Typer, normal: Path, tmp_path: Path, name: str, content: str | None,
                            expected: str, cli_only: bool) -> None:
    cfg = tmp_path / name
    if content is not None:
        cfg.write_text(content)
    if not cli_only:
        with pytest.raises(SettingsError, match=re.escape(expected)):
            build_config(cfg)
    result = CliRunner().invoke(app, [*run_args(normal, tmp_path, "--profile", "offline"), "--config", str(cfg)])
    assert result.exit_code == 2, (cfg, result.output)
    assert expected in result.stderr, (cfg, result.stderr)
    assert MeanDiffProfile.instances == 0


def test_unknown_model_ids_rejected_up_front(app: typer.Typer, normal: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*run_args(normal, tmp_path, "--profile", "paper"), "--detector", "no-org/no-such-dino",
                                      "--segmenter", "./models/missing-sam", "--tagger", "none", "--object", "tile",
                                      "--llm", "none"])
    assert result.exit_code == 2
    err = result.stderr
    assert "--detector 'no-org/no-such-dino'" in err and "hub is offline" in err
    assert "--segmenter './models/missing-sam': no such local file or folder" in err
    assert "allowed:" in err and "--profile offline" in err
    assert MeanDiffProfile.instances == 0


def test_preflight_accepts_local_model_folders_and_none(tmp_path: Path) -> None:
    (tmp_path / "dino").mkdir()
    (tmp_path / "sam").mkdir()
    cfg = build_config(profile="paper", detector=str(tmp_path / "dino"), segmenter=str(tmp_path / "sam"),
                       tagger="none", object_name="tile", llm="none")
    check_models(cfg, "paper")  # does not raise
    with pytest.raises(SettingsError, match="not a valid Hugging Face id|neither an existing local folder"):
        check_models(cfg.model_copy(update={"detector": "bad id with spaces"}), "paper")
    with pytest.raises(SettingsError, match="needs --llm-base-url"):
        check_models(cfg.model_copy(update={"llm": "openai:gpt-x"}), "paper")
    # `segment` loads no tagger or LLM: their references are not checked there
    check_models(cfg.model_copy(update={"llm": "missing/llm", "tagger": "missing/tagger", "object_name": None}),
                 "paper", stage2_only=True)


@pytest.mark.parametrize("none", ["none", "NONE", "None"])
def test_none_in_any_case_skips_tagger_and_llm_in_preflight(tmp_path: Path, none: str) -> None:
    (tmp_path / "dino").mkdir()
    (tmp_path / "sam").mkdir()
    cfg = build_config(profile="paper", detector=str(tmp_path / "dino"), segmenter=str(tmp_path / "sam"),
                       tagger=none, object_name="tile", llm=none)
    assert set(model_roles(cfg, "paper")) == {"--detector", "--segmenter"}
    assert missing_models(cfg, "paper", offline=True) == []
    check_models(cfg, "paper")
    # also when a caller skips validation (model_copy): the reference is parsed, not string-compared
    unvalidated = cfg.model_copy(update={"llm": none.upper(), "tagger": none.title()})
    assert set(model_roles(unvalidated, "paper")) == {"--detector", "--segmenter"}


def test_keywords_any_case_in_preflight(tmp_path: Path) -> None:
    (tmp_path / "dino").mkdir()
    (tmp_path / "sam").mkdir()
    cfg = build_config(profile="paper", detector=str(tmp_path / "dino"), segmenter=str(tmp_path / "sam"),
                       tagger="none", object_name="tile", llm="OpenAI:gpt-x")
    with pytest.raises(ModelsMissing, match="needs --llm-base-url") as err:  # a server reference, not a hub id
        check_models(cfg, "paper")
    assert [m.flag for m in err.value.missing] == ["--llm"]
    assert "--llm" not in model_roles(cfg.model_copy(update={"llm": "SmolLM2"}), "paper")


def test_none_detector_is_refused_for_the_paper_profile(tmp_path: Path) -> None:
    (tmp_path / "sam").mkdir()
    cfg = build_config(profile="paper", detector="NONE", segmenter=str(tmp_path / "sam"), tagger="none",
                       object_name="tile", llm="none")
    with pytest.raises(ModelsMissing, match="--detector 'none': the profile needs a detector"):
        check_models(cfg, "paper")
    check_models(cfg.model_copy(update={"profile": "offline"}), "offline")  # the offline profile loads no detector


def _cli_in_subprocess(args: list[str], cwd: Path) -> dict:
    """Run the real entry point; report the exit status and whether any model library was imported."""
    code = (
        "import sys, json\nfrom iapas.cli.app import main\n"
        f"sys.argv = ['iapas', *{args!r}]\n"
        "status = 0\ntry:\n    main()\nexcept SystemExit as e:\n    status = e.code if isinstance(e.code, int) else 1\n"
        "print(json.dumps({'status': status, 'torch': 'torch' in sys.modules, "
        "'transformers': 'transformers' in sys.modules}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "stderr": res.stderr}


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_real_cli_rejects_before_importing_model_libraries(normal: Path, tmp_path: Path) -> None:
    bad_threshold = _cli_in_subprocess(run_args(normal, tmp_path, "--box-threshold", "7"), tmp_path)
    assert bad_threshold["status"] == 2 and "allowed: [0, 1]" in bad_threshold["stderr"]
    assert not bad_threshold["torch"] and not bad_threshold["transformers"]
    unknown = _cli_in_subprocess(run_args(normal, tmp_path, "--profile", "paper", "--detector", "acme/ghost-dino"), tmp_path)
    assert unknown["status"] == 2 and "acme/ghost-dino" in unknown["stderr"]
    assert not unknown["torch"] and not unknown["transformers"]


def test_out_paths_of_the_wrong_kind(app: typer.Typer, normal: Path, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    result = CliRunner().invoke(app, ["run", "--normal", str(normal), "--images", str(normal), "--out",
                                      str(tmp_path / "a_file"), "--profile", "offline"])
    assert result.exit_code == 2 and "is not a folder" in result.stderr
    result = CliRunner().invoke(app, ["prompts", "--normal", str(normal), "--out", str(tmp_path), "--profile", "offline"])
    assert result.exit_code == 2 and "is a folder" in result.stderr
    assert MeanDiffProfile.instances == 0
