"""`--token-env` naming a variable that is not set refuses to start (exit 2) instead of serving without a token."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serve_support import fake_context

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fastapi") is None, reason="no serve extra")


def started(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record run_server calls instead of opening a port."""
    import iapas.cli.serve as serve_cli

    calls: list = []
    monkeypatch.setattr(serve_cli, "run_server", lambda *a, **k: calls.append(a))
    return calls


def invoke(*args: str, env: dict[str, str] | None = None):  # noqa: ANN201
    from cli_apps import command_app
    from iapas.cli import serve as serve_cli

    return CliRunner().invoke(command_app(serve_cli), ["serve", *args], env={"COLUMNS": "200", **(env or {})})


def test_unset_token_variable_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = started(monkeypatch)
    monkeypatch.delenv("MY_TYPO_TOKEN", raising=False)
    result = invoke("--context", f"tile={fake_context(tmp_path)}", "--token-env", "MY_TYPO_TOKEN")
    assert result.exit_code == 2 and "MY_TYPO_TOKEN" in result.output and not calls
    result = invoke("--context", f"tile={fake_context(tmp_path)}", "--token-env", "MY_TYPO_TOKEN",
                    env={"MY_TYPO_TOKEN": "   "})
    assert result.exit_code == 2 and not calls


def test_set_token_variable_and_default_still_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = started(monkeypatch)
    monkeypatch.delenv("IAPAS_SERVE_TOKEN", raising=False)
    assert invoke("--context", f"tile={fake_context(tmp_path)}").exit_code == 0  # default variable: optional
    assert calls[-1][3].token is None and calls[-1][1] == "127.0.0.1"
    result = invoke("--context", f"tile={fake_context(tmp_path)}", "--token-env", "MY_TOKEN", env={"MY_TOKEN": "abc"})
    assert result.exit_code == 0 and calls[-1][3].token == "abc"
