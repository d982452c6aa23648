"""A Typer app holding only the given command modules, so tests drive one command group in-process."""
from __future__ import annotations

from types import ModuleType

import typer


def command_app(*modules: ModuleType, epilog: str | None = None) -> typer.Typer:
    """App with the commands that each module's `register(app)` adds, kept as sub-commands."""
    app = typer.Typer(epilog=epilog)

    @app.callback()
    def main() -> None:  # a callback keeps a single command a sub-command
        """test app"""

    for module in modules:
        module.register(app)
    return app
