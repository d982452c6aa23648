"""The Stage 1 result ("context"): versioned, human-readable JSON that an engineer can review and edit.

`iapas segment` runs Stage 2 from it without reloading the tagger or LLM. Arrays (the offline profile's
feature memory bank) live in a sidecar `.npz` next to the JSON, referenced by file name.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from iapas.config import REMOVED_FIELDS, PipelineConfig
from iapas.errors import SettingsError
from iapas.io.atomic import atomic_write_json, atomic_write_npz
from iapas.settings import Calibration, MutualConfig, ReferenceSettings, Thresholds

CONTEXT_VERSION = 1
# context.reference keys on disk <-> Calibration fields (the JSON layout of version 1 is kept)
CALIBRATION_KEYS = {"mask_threshold": "threshold", "score_floor": "floor", "image_thresholds": "image_thresholds",
                    "mask_percentile": "percentile", "floor_percentile": "floor_percentile", "calibration": "method"}


# optional records written only when present (a context without them reads and writes as before)
OPTIONAL_REFERENCE_KEYS = ("mode", "settings", "mutual", "bank_file", "normal_pixel_mean", "normal_pixel_std",
                           "normal_image_max", "score_mapping", "alignment", "scales", "batch", "fusion")


class Reference(BaseModel):
    """context.reference of the offline / fused profiles, typed: how features were made (`settings`), how
    distances become scores (`calibration`), the bank file, the normal images' statistics and, zero-shot,
    the batch. An unknown key is refused. On disk the calibration stays flat (mask_threshold, score_floor,
    ...), as in every version-1 context."""

    model_config = ConfigDict(extra="forbid")

    mode: str | None = Field(None, description="few-shot, zero-shot; None in contexts made before zero-shot existed")
    settings: ReferenceSettings | None = None
    calibration: Calibration | None = None
    mutual: MutualConfig | None = Field(None, description="zero-shot: references per image, kept fraction, chunk")
    batch: list[str] | None = Field(None, description="zero-shot: every image of the batch, resolved paths")
    normal_pixel_mean: float | None = Field(None, ge=0.0, description="mean raw distance of the normal pixels")
    normal_pixel_std: float | None = Field(None, ge=0.0)
    normal_image_max: list[float] | None = Field(None, description="each normal image's leave-one-out map maximum")
    score_mapping: str | None = Field(None, description="how a raw distance becomes a score, in words")
    alignment: dict[str, Any] | None = Field(None, description="stages.position.Alignment record")
    scales: dict[str, list[float]] | None = Field(None, description="per scale its [floor, threshold] (stages.multiscale)")
    fusion: str | None = Field(None, description="fused: how a box's score is re-weighted")
    bank_file: str | None = Field(None, description="the sidecar .bank.npz, in the context's own folder")

    @model_validator(mode="before")
    @classmethod
    def _nest_calibration(cls, data: Any) -> Any:
        flat = isinstance(data, dict) and (any(k in data for k in ("mask_threshold", "score_floor", "mask_percentile"))
                                           or isinstance(data.get("calibration"), str))
        if not flat:
            return data
        data = dict(data)
        cal = {field: data.pop(key) for key, field in CALIBRATION_KEYS.items() if key in data}
        data["calibration"] = cal
        return data

    @field_validator("settings", mode="before")
    @classmethod
    def _settings(cls, v: Any) -> Any:
        return ReferenceSettings.from_json(v) if isinstance(v, dict) else v

    @field_serializer("settings")
    def _settings_json(self, v: ReferenceSettings | None) -> dict[str, Any] | None:
        return None if v is None else v.to_json()

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = {k: v for k, v in handler(self).items() if not (k in OPTIONAL_REFERENCE_KEYS and v is None)}
        cal = out.pop("calibration", None)
        if isinstance(cal, dict):
            unset = {"method": "", "image_thresholds": []}  # not written, as before
            made = cal.get("threshold") is not None  # zero-shot contexts calibrate later: no threshold, no floor
            for key, field in CALIBRATION_KEYS.items():
                value = cal.get(field)
                value = list(value) if isinstance(value, tuple) else value
                if value is None or value == unset.get(field, ...) or (field == "floor" and not made):
                    continue
                out[key] = value
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """A record (bank_file, normal_pixel_mean, ...), or `default` when it is not set."""
        value = getattr(self, key, None) if key in type(self).model_fields else None
        return default if value is None else value


class Fidelity(BaseModel):
    """Which of the official code's choices a paper / fused context used ("official") or iapas's own.

    Only the keys a context holds are written back.
    """

    model_config = ConfigDict(extra="forbid")

    object_tag_rule: str | None = None
    llm_prompt: str | None = None
    llm_decoding: str | None = None
    llm_max_new_tokens: int | None = None
    llm_parse: str | None = None
    max_phrases: int | None = None
    object_boxes: str | None = None
    size_filter: bool | None = None
    texture_preset: str | None = None
    tagger: str | None = None
    precision: str | None = None
    thresholds: str | None = None

    @model_serializer(mode="wrap")
    def _as_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}


OPTIONAL_CONTEXT_KEYS = ("fidelity", "kind_choice", "object_tag_scores", "llm_messages", "labelled_calibration",
                         "extension")


class Context(BaseModel):
    """Stage 1 output; every field is plain JSON. An unknown field is refused (a typo in an edited context
    must not pass silently)."""

    model_config = ConfigDict(extra="forbid")

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
    thresholds: Thresholds | None = Field(None, description="paper / fused Stage 2 thresholds (the only source)")
    models: dict[str, dict[str, str | None]] = Field(default_factory=dict, description="role -> {id, revision}")
    warnings: list[str] = Field(default_factory=list)
    resume: dict[str, Any] | None = Field(None, description="io.resume.Stamp it was made with: reused on a rerun when equal")
    reference: Reference = Field(default_factory=Reference, description="offline/fused: features, calibration, bank file")
    fidelity: Fidelity | None = Field(None, description="paper / fused: official choices or iapas's own")
    object_tag_scores: dict[str, float] | None = Field(None, description="best grounding score per tag, for review")
    llm_messages: list[dict[str, str]] | None = Field(None, description="the messages sent to the LLM")
    kind_choice: dict[str, Any] | None = Field(None, description="stages.kind.KindChoice record when the kind was chosen")
    labelled_calibration: dict[str, Any] | None = Field(None, description="`iapas calibrate`'s report")
    extension: dict[str, Any] | None = Field(None, description="a profile's own section (its `Profile.section` model)")
    # arrays are not serialised into JSON; they go to the sidecar npz
    _arrays: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    @field_validator("config", mode="before")
    @classmethod
    def _drop_removed_fields(cls, v: Any) -> Any:
        """Contexts written before a config field was removed still load (the field never changed a result)."""
        if isinstance(v, dict) and any(k in v for k in REMOVED_FIELDS):
            return {k: x for k, x in v.items() if k not in REMOVED_FIELDS}
        return v

    @field_validator("thresholds", mode="before")
    @classmethod
    def _no_thresholds(cls, v: Any) -> Any:
        return None if v == {} else v

    @field_serializer("thresholds")
    def _thresholds_json(self, v: Thresholds | None) -> dict[str, Any]:
        """Written as before: the four thresholds (plus a calibrated verdict), or {} for profiles without them."""
        return {} if v is None else v.model_dump(exclude_none=True)

    @model_serializer(mode="wrap")
    def _without_unset_records(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if not (k in OPTIONAL_CONTEXT_KEYS and v is None)}

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
            self.reference.bank_file = bank.name
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
        thresholds, reference = data.get("thresholds", {}), data.get("reference", {})
        check_context(path, thresholds if isinstance(thresholds, dict) else {}, reference if isinstance(reference, dict) else {})
        try:
            ctx = cls(**data)
        except ValidationError as exc:
            raise SettingsError(f"context file {path} is malformed: {str(exc)[:1000]}") from None
        bank_file = ctx.reference.get("bank_file")
        if bank_file is not None:
            ctx.set_arrays(**load_bank(path, bank_path(path, bank_file), ctx.reference.settings))
        return ctx


def _no_constant(name: str) -> None:
    """JSON has no NaN or Infinity; Python's parser accepts them unless told otherwise."""
    raise ValueError(f"{name} is not a JSON number")
