"""`iapas serve` settings, checked before any model loads or port opens."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_apps import command_app
from iapas.cli import serve as serve_cli
from iapas.cli.serve import bind_host
from iapas.errors import SettingsError
from iapas.serve.lines import load_lines, parse_line_spec

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason="the serve extra is not installed")


def test_without_a_token_the_default_is_loopback() -> None:
    assert bind_host(None, None) == "127.0.0.1"
    assert bind_host(None, "tok") == "0.0.0.0"
    assert bind_host("0.0.0.0", None) == "0.0.0.0"  # explicit --host wins


def test_line_specs() -> None:
    assert parse_line_spec("line7=a/ctx.json") == ("line7", Path("a/ctx.json"))
    assert parse_line_spec("a/ctx7.json") == ("ctx7", Path("a/ctx7.json"))
    for bad in ("bad name=ctx.json", "=ctx.json", "x="):
        with pytest.raises(SettingsError):
            parse_line_spec(bad)
    with pytest.raises(SettingsError, match="at least one"):
        load_lines([])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--context", "a=missing.json"], "does not exist"),
        (["--context", "a=x.json", "--queue-size", "0"], "--queue-size 0 must be positive"),
        (["--context", "a=x.json", "--port", "70000"], "--port 70000"),
        (["--context", "a=x.json", "--context", "a=y.json"], "given twice"),
        (["--context", "a=x.json", "--map-pixels", "1000"], "--map-pixels 1000 is too small"),
    ],
)
def test_bad_settings_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iapas.config import build_config
    from iapas.context import Context

    monkeypatch.chdir(tmp_path)
    for name in ("x.json", "y.json"):
        Context(profile="offline", config=build_config(profile="offline")).save(tmp_path / name)
    result = CliRunner().invoke(command_app(serve_cli), ["serve", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.output
