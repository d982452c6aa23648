"""`iapas run --help` on a 100-column terminal: grouped panels, every option name whole, no line cut."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer.main

from iapas.cli import options as o

WIDTH = 100


def _help(width: int) -> str:
    env = {**os.environ, "COLUMNS": str(width), "TERMINAL_WIDTH": str(width), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "iapas.cli.app", "run", "--help"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def run_help() -> str:
    return _help(WIDTH)


def _run_option_names() -> list[str]:
    from iapas.cli.app import _register_all, app

    _register_all()
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    return [name for param in command.params for name in param.opts if name.startswith("--")]


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
@pytest.mark.parametrize("width", [WIDTH, 80])
def test_every_option_name_is_whole_and_no_line_is_wider_than_the_terminal(width: int) -> None:
    run_help = _help(width)
    assert "\u2026" not in run_help  # rich's ellipsis: something was cut
    assert max(len(line) for line in run_help.splitlines()) <= width
    shown = set(run_help.replace("│", " ").split())
    names = _run_option_names()
    assert len(names) > 40
    missing = [n for n in names if n not in shown]
    assert not missing, f"option names cut or absent: {missing}"


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_options_are_grouped_in_panels_in_order(run_help: str) -> None:
    heads = [line.split("\u2500 ", 1)[1].split(" \u2500", 1)[0] for line in run_help.splitlines()
             if line.startswith("\u256d\u2500 ")]
    assert [h for h in heads if h in o.PANEL_ORDER] == list(o.PANEL_ORDER)
    panel_of = {}
    current = None
    for line in run_help.splitlines():
        if line.startswith("\u256d\u2500 "):
            current = line.split("\u2500 ", 1)[1].split(" \u2500", 1)[0]
        for word in line.replace("│", " ").split()[:3]:
            if word.startswith("--"):
                panel_of.setdefault(word, current)
    assert panel_of["--images"] == o.PANEL_INPUTS and panel_of["--out"] == o.PANEL_OUTPUTS
    assert panel_of["--llm-allow-insecure-http"] == o.PANEL_PAPER and panel_of["--refine"] == o.PANEL_OFFLINE
    assert panel_of["--threads"] == o.PANEL_ENGINE and panel_of["--profile"] == o.PANEL_MODELS
    assert "[default: npz16]" in run_help and "(default: chosen from" in run_help
    unplaced = sorted(n for n in _run_option_names() if panel_of.get(n) not in o.PANEL_ORDER and n != "--help")
    assert not unplaced, f"options outside the panels (add them to cli/options.OPTION_PANELS): {unplaced}"
