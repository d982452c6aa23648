"""The Stage 1 result ("context"): versioned, human-readable JSON that an engineer can review and edit.

`iapas segment` runs Stage 2 from it without reloading the tagger or LLM. Arrays (the offline profile's
feature memory bank) live in a sidecar `.npz` next to the JSON, referenced by file name.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from iapas.config import PipelineConfig
from iapas.errors import SettingsError
from iapas.io.atomic import atomic_write_json, atomic_write_npz

CONTEXT_VERSION = 1


class Context(BaseModel):
    """Stage 1 output; every field is plain JSON."""

    model_config = ConfigDict(extra="allow")

    version: int = CONTEXT_VERSION
    profile: str
    config: PipelineConfig
    normal_images: list[str] = Field(default_factory=list, description="the r sampled normal images")
    normal_fingerprint: str | None = Field(None, description="hash of the sampled normal images' content")
    seed: int = 111
    tags: list[str] = Field(default_factory=list, description="tags after removing anomaly-like ones")
    removed_tags: list[str] = Field(default_factory=list)
    object_tag: str | None = None
    llm_request: str | None = None
    llm_raw_answer: str | None = None
    defect_words: list[str] = Field(default_factory=list, description="parsed LLM words")
    final_prompt: list[str] = Field(default_factory=list, description="phrases given to the detector")
    thresholds: dict[str, float] = Field(default_factory=dict)
    models: dict[str, dict[str, str | None]] = Field(default_factory=dict, description="role -> {id, revision}")
    warnings: list[str] = Field(default_factory=list)
    reference: dict[str, Any] = Field(default_factory=dict, description="offline/fused: bank file, calibration")
    # arrays are not serialised into JSON; they go to the sidecar npz
    _arrays: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    def set_arrays(self, **arrays: np.ndarray) -> None:
        self._arrays = dict(arrays)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return self._arrays

    def save(self, path: str | Path) -> Path:
        """Write the JSON (and the sidecar npz when there are arrays) atomically."""
        path = Path(path)
        if self.arrays:
            bank = path.with_suffix(".bank.npz")
            atomic_write_npz(bank, **self.arrays)
            self.reference["bank_file"] = bank.name
        atomic_write_json(path, self.model_dump(mode="json"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Context":
        path = Path(path)
        from iapas.context_checks import bank_path, check_context, load_bank

        try:
            data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
        except FileNotFoundError:
            raise SettingsError(f"context file {path} does not exist (create it with `iapas prompts`)") from None
        except (json.JSONDecodeError, ValueError) as exc:
            raise SettingsError(f"context file {path} is not valid JSON: {str(exc)[:300]}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"context file {path} cannot be read: {str(exc)[:300]}") from None
        if not isinstance(data, dict):
            raise SettingsError(f"context file {path} must hold a JSON object")
        if data.get("version") != CONTEXT_VERSION:
            raise SettingsError(f"context file {path} has version {data.get('version')}, expected {CONTEXT_VERSION}")
        try:
            ctx = cls(**data)
        except ValidationError as exc:
            raise SettingsError(f"context file {path} is malformed: {str(exc)[:1000]}") from None
        check_context(path, ctx.thresholds, ctx.reference)
        if "bank_file" in ctx.reference:
            ctx.set_arrays(**load_bank(path, bank_path(path, ctx.reference["bank_file"])))
        return ctx


def _no_constant(name: str) -> None:
    """JSON has no NaN or Infinity; Python's parser accepts them unless told otherwise."""
    raise ValueError(f"{name} is not a JSON number")
