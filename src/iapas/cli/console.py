"""Console output that a file name cannot forge or garble.

File and folder names may hold ESC sequences (recolour, move the cursor, retitle the terminal), carriage
returns or newlines (fake "ok" lines). rich's `escape` only neutralises its own [markup]. Here:
`printable` writes every control character as a visible escape (\\x1b, \\n, ...), `safe` is that plus
the markup escape and is what every interpolated user value goes through, and `SafeConsole` applies
`printable` (newlines kept) to everything it prints, so a value that missed `safe` still cannot reach
the terminal raw.
"""
from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.markup import escape

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_CONTROL_KEEP_NEWLINES = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object, keep_newlines: bool = False) -> str:
    """`text` with control characters (and undecodable bytes kept as surrogates) shown as escapes."""
    pattern = _CONTROL_KEEP_NEWLINES if keep_newlines else _CONTROL
    return pattern.sub(_visible, str(text))


def safe(value: object) -> str:
    """A user-controlled value (path, reason, name) ready to put in a console line: one line, no markup."""
    return escape(printable(value))


class SafeConsole(Console):
    """A rich Console whose printed strings never carry raw control characters (newlines aside)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: A003 - rich's name
        cleaned = [printable(o, keep_newlines=True) if isinstance(o, str) else o for o in objects]
        super().print(*cleaned, **kwargs)


def echo(text: object) -> None:
    """typer.echo for text built from user data (dataset folder names, paths): no raw control characters."""
    import typer

    typer.echo(printable(text, keep_newlines=True))
