"""Issue 12 item 11: file names with ESC or newline characters never reach the terminal raw."""
from __future__ import annotations

from pathlib import Path

import pytest
import typer

from cli_apps import command_app
from fake_profile import use_mean_diff
from inputs_support import invoke, normals, photo, summary
from iapas.cli import run as run_cmd

EVIL = "evil\x1b[2J\x1b]0;pwned\x07\rok\nFAKE ok line.png"


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    use_mean_diff(monkeypatch)
    return command_app(run_cmd)


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_failed_file_name_with_control_characters_is_escaped_on_the_console(app: typer.Typer, tmp_path: Path) -> None:
    normals(tmp_path / "good", 3)
    lot = tmp_path / "lot"
    photo(lot / "a.png")
    (lot / EVIL).write_bytes(b"not an image at all, just text\n")
    out = tmp_path / "out"
    code, output = invoke(app, "run", "--normal", tmp_path / "good", "--images", lot, "--out", out, "-r", "3")
    assert code == 3, output
    assert "\x1b" not in output and "\x07" not in output and "\r" not in output
    failed = [line for line in output.splitlines() if "failed" in line and "evil" in line]
    assert len(failed) == 1, output  # one line: the newline in the name did not start a fake line
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\rok\\nFAKE ok line.png" in failed[0]
    assert not any(line.startswith("FAKE") for line in output.splitlines())
    # the summary keeps the real name (JSON escapes it)
    assert str(lot / EVIL) in {i["path"] for i in summary(out)["inputs"]}


def test_printable_and_safe() -> None:
    from iapas.cli.console import printable, safe

    assert printable("a\x1bb\nc\x9bd\x7f") == "a\\x1bb\\nc\\x9bd\\x7f"
    assert printable("line1\nline2\x1b", keep_newlines=True) == "line1\nline2\\x1b"
    assert safe("[red]x\n") == "\\[red]x\\n"
    assert printable("caf\u00e9 \u6f22\u5b57") == "caf\u00e9 \u6f22\u5b57"  # printable text is untouched
