"""The import contracts: every top-level module and package of iapas sits in one layer, and the no-cycle
contract covers the whole package; `lint-imports` itself runs in CI (.ci/run)."""
from __future__ import annotations

import configparser
import pkgutil
from pathlib import Path

import iapas

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    assert parser.read(ROOT / ".importlinter"), "no .importlinter at the repository root"
    return parser


def _layer_modules(parser: configparser.ConfigParser) -> list[str]:
    layers = parser["importlinter:contract:layers"]["layers"]
    return [m.strip() for line in layers.splitlines() for m in line.split("|") if m.strip()]


def test_every_top_level_module_and_package_is_in_one_layer() -> None:
    listed = _layer_modules(_contracts())
    src = ROOT / "src" / "iapas"
    found = {f"iapas.{m.name}" for m in pkgutil.iter_modules([str(src)]) if not m.name.startswith("_")}
    installed = {f"iapas.{m.name}" for m in pkgutil.iter_modules(iapas.__path__) if not m.name.startswith("_")}
    assert installed == found, "the imported iapas is not this checkout's (reinstall it: pip install .)"
    assert sorted(set(listed)) == sorted(listed), "a module is listed in two layers"
    assert found - set(listed) == set(), "top-level modules in no layer"
    assert set(listed) - found == set(), "layers name modules that do not exist"


def test_no_cycle_contract_covers_the_whole_package() -> None:
    parser = _contracts()
    acyclic = [s for s in parser.sections() if parser[s].get("type") == "acyclic_siblings"]
    assert len(acyclic) == 1
    section = parser[acyclic[0]]
    assert section["ancestors"].split() == ["iapas"]  # iapas and, recursively, every subpackage
    assert "depth" not in section and "skip_descendants" not in section and "ignore_imports" not in section
