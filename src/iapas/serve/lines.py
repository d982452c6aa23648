"""The product lines a server answers for: each a context fitted beforehand with `iapas prompts`.

A line's provenance (context file, digest, profile, prompt, threshold, models) is what `GET /v1/lines`
shows, so an operator can tell which context judged a part.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iapas.context import Context
from iapas.errors import SettingsError
from iapas.verdict import decision_threshold, with_verdict_threshold

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class Line:
    """One product line: its name in URLs, its context, and where that context came from."""

    name: str
    path: Path
    context: Context
    context_id: str  # sha256 of the context JSON and its array sidecar: changes whenever the context does

    def provenance(self) -> dict[str, Any]:
        ctx = self.context
        return {
            "line": self.name,
            "context_file": str(self.path),
            "context_id": self.context_id,
            "profile": ctx.profile,
            "threshold": decision_threshold(ctx),
            "object_tag": ctx.object_tag,
            "final_prompt": ctx.final_prompt,
            "normal_images": len(ctx.normal_images),
            "seed": ctx.seed,
            "models": ctx.models,
            "warnings": ctx.warnings,
        }


def context_digest(path: Path, context: Context) -> str:
    """A short, stable id of the context's content (JSON plus the sidecar arrays file)."""
    h = hashlib.sha256(path.read_bytes())
    bank = context.reference.get("bank_file")
    if bank and (path.parent / str(bank)).is_file():
        h.update((path.parent / str(bank)).read_bytes())
    return "sha256:" + h.hexdigest()[:16]


def parse_line_spec(spec: str) -> tuple[str, Path]:
    """`NAME=context.json` (or a bare path, named after its file) -> (name, path)."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).stem, spec
    name = name.strip()
    if not _NAME.match(name):
        raise SettingsError(f"--context {spec!r}: line name {name!r} must be letters, digits, '_', '.' or '-' (up to 64)")
    if not path:
        raise SettingsError(f"--context {spec!r}: give NAME=context.json")
    return name, Path(path)


def load_lines(specs: list[str], verdict_threshold: float | None = None) -> dict[str, Line]:
    """Load every `--context` once, before the server starts (errors here stop it with exit status 2);
    `verdict_threshold` replaces each context's own (`--verdict-threshold`)."""
    if not specs:
        raise SettingsError("give at least one --context NAME=context.json (written by `iapas prompts`)")
    lines: dict[str, Line] = {}
    for spec in specs:
        name, path = parse_line_spec(spec)
        if name in lines:
            raise SettingsError(f"--context: line {name!r} is given twice")
        context = with_verdict_threshold(Context.load(path), verdict_threshold)
        lines[name] = Line(name, path, context, context_digest(path, context))
    return lines
