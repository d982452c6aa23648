"""Error types and process exit codes shared by the whole tool.

Every error a user can cause names what was wrong and what to do, so the CLI can print it as one line.
"""
from __future__ import annotations

from pathlib import Path

# Exit codes (documented in `iapas --help`).
EXIT_OK = 0
EXIT_SOME_FAILED = 3  # some inputs failed, the others were processed
EXIT_NOTHING_DONE = 4  # no input could be processed
EXIT_BAD_SETTINGS = 2  # invalid settings or arguments, rejected before any model loads
EXIT_INTERRUPTED = 130


class IapasError(Exception):
    """Base class for errors that carry a user-facing message."""


class SettingsError(IapasError):
    """Invalid configuration or arguments; raised before any model is loaded."""


class InputError(IapasError):
    """One input file cannot be used; the run goes on with the others."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DatasetError(IapasError):
    """A dataset root is missing or does not follow its publisher's layout."""


class ModelLoadError(IapasError):
    """A model could not be loaded: says which id/path, why, and what to do."""

    def __init__(self, model: str, why: str, todo: str) -> None:
        self.model = model
        self.why = why
        self.todo = todo
        super().__init__(f"cannot load model '{model}': {why}. {todo}")
