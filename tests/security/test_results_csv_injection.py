"""results.csv never starts a text cell with a character a spreadsheet runs as a formula."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from files_support import images, invoke, run_app

FORMULA_NAMES = ['=HYPERLINK("http:__x","click").png', "+cmd.png", "-2+3.png", "@SUM(A1).png"]


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_formula_file_names_are_quoted_in_results_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = images(tmp_path / "i", 0, 120, names=[*FORMULA_NAMES, "plain.png"])
    out = tmp_path / "out"
    monkeypatch.chdir(folder)  # files named as given on the command line: the name starts the path cell
    code, err = invoke(run_app(monkeypatch), "run", "--normal", images(tmp_path / "n", 3), "--images",
                       ".", "--out", out, "--profile", "offline")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text(encoding="utf-8"))))
    assert len(rows) == len(FORMULA_NAMES) + 1
    for row in rows:
        for value in row.values():
            assert not (value or "").startswith(("=", "+", "-", "@", "\t", "\r")), row
    by_name = {Path(r["path"].lstrip("'")).name: r for r in rows}
    assert by_name['=HYPERLINK("http:__x","click").png']["path"] == '\'=HYPERLINK("http:__x","click").png'
    assert by_name["-2+3.png"]["name"] == "'-2_3"
    assert not by_name["plain.png"]["path"].startswith("'")  # ordinary cells stay as they were


def test_cell_rule() -> None:
    from iapas.outputs.run_items import cell

    assert cell("=1+1") == "'=1+1" and cell("\tx") == "'\tx" and cell("\rx") == "'\rx"
    assert cell("a=b") == "a=b" and cell("") == "" and cell(None) == ""
