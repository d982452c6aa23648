"""How well the public functions of a package document themselves: docstrings, Args sections, array shapes.

Public = a function or method whose name has no leading underscore, defined at module level or in a public
class, in a module whose path has no private part (``__init__.py`` counts as public). Figures:

- docstring: % of public functions with a docstring;
- Args: % of public functions that take parameters (besides self/cls) whose docstring has an ``Args:`` section;
- shapes: % of public functions taking or returning arrays (an annotation mentioning ``ndarray``, ``NDArray``
  or ``Tensor``) whose docstring states a shape: a parenthesised shape such as ``(H, W)``, ``(N, 4)``,
  ``(h*w, C)`` or ``(N,)``, or the word "shape".

Usage: ``python bench/docstring_shapes.py [--root src/iapas] [--min-shapes 80] [--list]``; exits 1 when the
shapes figure is below ``--min-shapes``.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ARRAY_ANNOTATION = re.compile(r"\b(?:ndarray|NDArray|Tensor)\b")
# one dimension: a number, a capitalised name (H, W, N, C, Cin), one lower-case letter (h, w, m_j), or "...";
# with an optional arithmetic term (h*w, N+1). "(scale, sigma, min_size)" is a tuple, not a shape.
_DIM = r"(?:(?:[0-9]+|[A-Z][A-Za-z0-9_]{0,11}|[a-z](?:_[a-z0-9]+)?)(?:\s*[-+*/]\s*[A-Za-z0-9_]+)?|\.\.\.)"
SHAPE = re.compile(rf"\(\s*{_DIM}\s*,\s*\)|\(\s*{_DIM}(?:\s*,\s*{_DIM})+\s*\)|(?i:\bshapes?\b)")
ARGS_SECTION = re.compile(r"^\s*Args:\s*$", re.MULTILINE)


@dataclass(frozen=True)
class FunctionDoc:
    """One public function as the figures see it."""

    where: str  # "path:line qualified.name"
    has_doc: bool
    has_params: bool
    has_args: bool
    takes_arrays: bool
    states_shape: bool


def _is_public_module(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).with_suffix("").parts
    return all(p == "__init__" or not p.startswith("_") for p in parts)


def _annotations(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = fn.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    every += [a for a in (args.vararg, args.kwarg) if a is not None]
    texts = [ast.unparse(a.annotation) for a in every if a.annotation is not None]
    if fn.returns is not None:
        texts.append(ast.unparse(fn.returns))
    return texts


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[str]:
    args = fn.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    if is_method and names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def _public_functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node, False
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item, True


def measure_file(path: Path, root: Path) -> list[FunctionDoc]:
    """The public functions of one source file.

    Args:
        path: a .py file under `root`.
        root: the package folder, for the module's public test and the names printed.
    Returns:
        One FunctionDoc per public function or method, in source order.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[FunctionDoc] = []
    for name, fn, is_method in _public_functions(tree):
        doc = ast.get_docstring(fn) or ""
        out.append(FunctionDoc(
            where=f"{path.relative_to(root.parent)}:{fn.lineno} {name}",
            has_doc=bool(doc),
            has_params=bool(_params(fn, is_method)),
            has_args=bool(ARGS_SECTION.search(doc)),
            takes_arrays=any(ARRAY_ANNOTATION.search(t) for t in _annotations(fn)),
            states_shape=bool(SHAPE.search(doc)),
        ))
    return out


def measure(root: Path) -> list[FunctionDoc]:
    """Every public function of the package at `root` (files in sorted order)."""
    found: list[FunctionDoc] = []
    for path in sorted(root.rglob("*.py")):
        if _is_public_module(path, root):
            found += measure_file(path, root)
    return found


def percent(part: int, whole: int) -> float:
    """part / whole in %, 100 when there is nothing to count."""
    return 100.0 * part / whole if whole else 100.0


def figures(docs: list[FunctionDoc]) -> dict[str, float]:
    """The three percentages and their denominators.

    Args:
        docs: the public functions, from `measure`.
    Returns:
        {"functions", "docstring_pct", "with_params", "args_pct", "array_functions", "shapes_pct"}.
    """
    with_params = [d for d in docs if d.has_params]
    arrays = [d for d in docs if d.takes_arrays]
    return {
        "functions": len(docs),
        "docstring_pct": percent(sum(d.has_doc for d in docs), len(docs)),
        "with_params": len(with_params),
        "args_pct": percent(sum(d.has_args for d in with_params), len(with_params)),
        "array_functions": len(arrays),
        "shapes_pct": percent(sum(d.states_shape for d in arrays), len(arrays)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1] / "src" / "iapas")
    parser.add_argument("--min-shapes", type=float, default=0.0, help="exit 1 below this shapes percentage")
    parser.add_argument("--list", action="store_true", help="name the array functions that state no shape")
    args = parser.parse_args(argv)
    docs = measure(args.root)
    f = figures(docs)
    print(f"public functions: {f['functions']}")
    print(f"with a docstring: {f['docstring_pct']:.1f}%")
    print(f"with an Args section (of {f['with_params']} taking parameters): {f['args_pct']:.1f}%")
    print(f"stating array shapes (of {f['array_functions']} taking or returning arrays): {f['shapes_pct']:.1f}%")
    if args.list:
        for d in docs:
            if d.takes_arrays and not d.states_shape:
                print(f"  no shape: {d.where}")
    if f["shapes_pct"] < args.min_shapes:
        print(f"FAIL: shapes {f['shapes_pct']:.1f}% < {args.min_shapes:g}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
