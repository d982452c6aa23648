"""docs/fidelity.md names, on every row, the tests that check it: each named test must exist.

A row that cites a file without a test, a bare `::name`, or a test that was renamed or never written
fails here, so the document cannot claim evidence that is not in the suite.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "fidelity.md"
CITATION = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def cited(text: str) -> list[tuple[str, str | None]]:
    """(file, test name or None) of every `tests/...py[::name]` in the text, in order."""
    return [(m.group(1), m.group(2)) for m in CITATION.finditer(text)]


def defined_tests(path: Path) -> set[str]:
    """Names of the test functions defined in a test module (module level or in classes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test")}


def table_rows(text: str) -> list[str]:
    """The body rows of the document's Markdown tables (header and separator rows left out)."""
    rows = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        if i + 1 < len(lines) and set(lines[i + 1]) <= set("|-: ") and lines[i + 1].startswith("|"):
            continue  # a header row
        rows.append(line)
    return rows


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_every_test_named_in_the_fidelity_document_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    citations = cited(text)
    assert len(citations) > 40
    missing = []
    for file, name in citations:
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
        elif name is not None and name not in defined_tests(path):
            missing.append(f"{file}::{name}")
    for row in table_rows(text):  # in the tables a file alone is no evidence: name the test
        missing += [f"{file} (a table row names no test of it)" for file, name in cited(row) if name is None]
    assert not missing, "docs/fidelity.md cites tests that do not exist: " + ", ".join(missing)
    assert not re.search(r"`::\w+`", text), "cite tests as `tests/file.py::test_name`, not a bare `::name`"


def test_every_table_row_names_a_test() -> None:
    rows = table_rows(DOC.read_text(encoding="utf-8"))
    assert len(rows) > 25
    bare = [r[:60] for r in rows if not any(name for _, name in cited(r))]
    assert not bare, f"rows without a test: {bare}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("`tests/test_a.py::test_x`, `tests/b/test_c.py`", [("tests/test_a.py", "test_x"), ("tests/b/test_c.py", None)]),
        ("no citation", []),
    ],
)
def test_citation_parser(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert cited(text) == expected


def test_the_check_catches_a_missing_test(tmp_path: Path) -> None:
    module = tmp_path / "test_m.py"
    module.write_text("def test_real():\n    pass\n\nclass TestK:\n    def test_method(self):\n        pass\n")
    assert defined_tests(module) == {"test_real", "test_method"}
    assert "test_renamed" not in defined_tests(module)
