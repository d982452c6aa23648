"""Validation of an edited context file, as strict as the config.

A context is meant to be reviewed and edited by hand, so `segment` must not trust it: a huge feature size
exhausts memory, a NaN or non-positive threshold produces nonsense scores (and NaN in JSON), and a bank
path outside the context's folder reads any file. The ranges are those declared on the settings' fields
(`iapas.settings.ReferenceSettings`), read here, never repeated. Every problem is listed in one
SettingsError (exit status 2).
"""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from iapas.config import PipelineConfig, quote
from iapas.errors import SettingsError
from iapas.settings import ReferenceSettings, feature_width, with_older_defaults

TEXT_THRESHOLD_KEYS = ("verdict_rule",)  # thresholds.* that hold a sentence, not a number


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite(v: Any, low: float | None = None, low_open: bool = False) -> bool:
    if not _is_number(v) or not math.isfinite(v):
        return False
    if low is None:
        return True
    return v > low if low_open else v >= low


def _as_config(field: str, value: Any) -> str | None:
    """The config's own error for `value` in `field`, or None when the config would accept it."""
    try:
        PipelineConfig(**{field: value})
    except ValidationError as exc:
        return exc.errors()[0]["msg"]
    return None


def field_bound(model: type[BaseModel], field: str, bound: str) -> float | None:
    """The `ge` / `le` / `gt` / `lt` bound declared on a pydantic field, or None."""
    for meta in model.model_fields[field].metadata:
        value = getattr(meta, bound, None)
        if value is not None:
            return float(value)
    return None


def settings_problems(settings: Any) -> list[str]:
    """Problems of reference.settings (how features are extracted and scored), from the field declarations
    of `ReferenceSettings` (strict JSON types: 3.0 is not an int, "3" not a number)."""
    if not isinstance(settings, dict):
        return [f"reference.settings must be a mapping, got {type(settings).__name__}"]
    try:
        ReferenceSettings.model_validate_json(json.dumps(with_older_defaults(settings)), strict=True)
    except ValidationError as exc:
        return [f"reference.settings.{'.'.join(str(x) for x in err['loc'][:1]) or 'settings'}: {err['msg']}"
                f"{_allowed(str(err['loc'][0])) if err['loc'] else ''} (got {quote(_value_at(settings, err['loc']))})"
                for err in exc.errors()]
    except ValueError as exc:  # NaN / Infinity cannot be JSON
        return [f"reference.settings: {exc}"]
    return []


def _value_at(settings: dict[str, Any], loc: tuple[Any, ...]) -> Any:
    return settings.get(loc[0]) if loc else settings


def _allowed(field: str) -> str:
    """'; allowed: [low, high]' from a ReferenceSettings field's declared bounds ('' without bounds)."""
    if field not in ReferenceSettings.model_fields:
        return ""
    low = field_bound(ReferenceSettings, field, "ge")
    high = field_bound(ReferenceSettings, field, "le")
    if low is None or high is None:
        return ""
    return f"; allowed: [{low:g}, {high:g}]"


def reference_problems(reference: dict[str, Any]) -> list[str]:
    """Problems of the known numbers in context.reference (offline / fused calibration)."""
    problems = []
    if "mask_threshold" in reference and not _finite(reference["mask_threshold"], 0.0, low_open=True):
        problems.append(f"reference.mask_threshold: must be a finite number > 0 (got {quote(reference['mask_threshold'])})")
    for key in ("normal_pixel_mean", "normal_pixel_std"):
        if key in reference and not _finite(reference[key], 0.0):
            problems.append(f"reference.{key}: must be a finite number >= 0 (got {quote(reference[key])})")
    if "mask_percentile" in reference and (why := _as_config("mask_percentile", reference["mask_percentile"])):
        problems.append(f"reference.mask_percentile: {why} (got {quote(reference['mask_percentile'])})")
    maxima = reference.get("normal_image_max", [])
    if not (isinstance(maxima, list) and all(_finite(v) for v in maxima)):
        problems.append(f"reference.normal_image_max: must be a list of finite numbers (got {quote(maxima)})")
    if "settings" in reference:
        problems += settings_problems(reference["settings"])
    return problems


def bank_path(context_file: Path, name: Any) -> Path:
    """The sidecar bank file, which must be a relative path inside the context's own folder."""
    if not isinstance(name, str) or not name.strip():
        raise SettingsError(f"context {context_file}: reference.bank_file must be a file name (got {quote(name)})")
    pure = PurePath(name)
    if pure.is_absolute() or Path(name).is_absolute() or ".." in pure.parts or "\\" in name or name.startswith("~"):
        raise SettingsError(
            f"context {context_file}: reference.bank_file {quote(name)} must name a file in the context's own folder "
            "(no absolute path, no '..')"
        )
    folder = context_file.parent.resolve()
    bank = (folder / name).resolve()
    if not bank.is_relative_to(folder):
        raise SettingsError(f"context {context_file}: reference.bank_file {quote(name)} leads outside {folder}")
    return bank


MAX_BANK_ROWS = int(field_bound(ReferenceSettings, "max_bank", "le") or 0)
MAX_FEATURE_WIDTH = 4096  # wider than any stage combination of the packaged backbones
MAX_BANK_MEMBERS = 8  # the bank holds two arrays; an archive of many members is not one of ours


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of a .npy stream (no data read)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(int(n) for n in shape), np.dtype(dtype)


def bank_limits(settings: Any) -> tuple[int, int | None]:
    """(most rows, exact row width or None) a bank made with `settings` (a ReferenceSettings) can have."""
    if settings is None:
        return MAX_BANK_ROWS, None
    rows = int(getattr(settings, "max_bank", MAX_BANK_ROWS))
    width = feature_width(str(getattr(settings, "backbone", "")), tuple(getattr(settings, "stages", ())))
    return min(rows, MAX_BANK_ROWS), width


def inspect_bank(bank: Path, settings: Any = None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of the bank's arrays, read from the zip directory and the .npy headers only, checked
    against what a bank of `settings` can hold, so a forged file (a compressed bomb, a header announcing a huge
    array, a width another backbone would make) is refused before any array is allocated.

    Returns:
        array name -> (shape, dtype).

    Raises:
        SettingsError: one line naming the bank file and the problem.
    """
    rows_max, width = bank_limits(settings)
    width_max = width or MAX_FEATURE_WIDTH
    byte_budget = rows_max * (width_max + 1) * 8 + 4096  # float64 features + int64 sources + headers

    def refuse(problem: str) -> SettingsError:
        return SettingsError(f"bank file {bank}: {problem}; rerun `iapas prompts`")

    found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(bank) as zf:
            members = zf.infolist()
            if len(members) > MAX_BANK_MEMBERS:
                raise refuse(f"holds {len(members)} entries, a bank has 2")
            total = sum(m.file_size for m in members)
            if total > byte_budget:
                raise refuse(f"unpacks to {total} bytes, more than the {byte_budget} a bank of at most {rows_max} rows "
                             f"x {width_max} features can hold")
            for m in members:
                if not m.filename.endswith(".npy"):
                    raise refuse(f"entry {quote(m.filename)} is not an .npy array")
                with zf.open(m) as fh:
                    shape, dtype = _npy_header(fh)
                    header = fh.tell()
                if dtype.hasobject or dtype.kind not in "biuf" or dtype.itemsize > 8:
                    raise refuse(f"array {quote(m.filename[:-4])} has dtype {dtype}, not a plain number type")
                if math.prod(shape) * dtype.itemsize != m.file_size - header:
                    raise refuse(f"array {quote(m.filename[:-4])} announces shape {shape} ({dtype}), which does not "
                                 f"match the {m.file_size - header} data bytes it holds")
                found[m.filename[:-4]] = (shape, dtype)
    except SettingsError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError, NotImplementedError) as exc:
        raise SettingsError(f"bank file {bank} is not a readable .npz archive ({str(exc)[:200]}); rerun `iapas prompts`") from None
    if "bank_features" in found:
        shape = found["bank_features"][0]
        if len(shape) != 2 or shape[0] == 0 or found["bank_features"][1].kind != "f":
            raise refuse("bank_features must be a non-empty 2-D float array")
        if shape[0] > rows_max:
            raise refuse(f"bank_features has {shape[0]} rows, more than max_bank {rows_max} of the context's settings")
        if width is not None and shape[1] != width:
            raise refuse(f"bank_features rows have {shape[1]} features, but backbone {settings.backbone} stages "
                         f"{list(settings.stages)} make {width}")
        if shape[1] > width_max:
            raise refuse(f"bank_features rows have {shape[1]} features, more than {width_max}")
    return found


def load_bank(context_file: Path, bank: Path, settings: Any = None) -> dict[str, np.ndarray]:
    """The bank arrays, checked (first from the headers, `inspect_bank`, then the values): an npz holding finite
    2-D features of the width `settings` (a ReferenceSettings) make and one integer source per row."""
    if not bank.is_file():
        raise SettingsError(f"context {context_file} refers to {bank}, which is missing")
    inspect_bank(bank, settings)
    try:
        loaded = np.load(bank, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
    except MemoryError:
        raise SettingsError(f"bank file {bank} does not fit in memory; rerun `iapas prompts`") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise SettingsError(f"bank file {bank} is not a readable .npz archive ({str(exc)[:200]}); rerun `iapas prompts`") from None
    for key, arr in arrays.items():
        if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
            raise SettingsError(f"bank file {bank}: array {quote(key)} must hold finite numbers; rerun `iapas prompts`")
    if "bank_features" in arrays:  # the offline / fused reference bank: one source image index per row
        feats, source = arrays["bank_features"], arrays.get("bank_source")
        if feats.ndim != 2 or feats.shape[0] == 0 or feats.dtype.kind != "f":
            raise SettingsError(f"bank file {bank}: bank_features must be a non-empty 2-D float array; rerun `iapas prompts`")
        if source is None or source.shape != (feats.shape[0],) or source.dtype.kind not in "iu":
            raise SettingsError(f"bank file {bank}: bank_source must hold one integer per bank_features row; rerun `iapas prompts`")
    return arrays


def check_context(context_file: Path, thresholds: dict[str, float], reference: dict[str, Any]) -> None:
    """Raise one SettingsError listing every problem of the edited fields."""
    problems = [f"thresholds.{k}: must be a finite number (got {quote(v)})" for k, v in thresholds.items()
                if k not in TEXT_THRESHOLD_KEYS and not _finite(v)]
    problems += [f"thresholds.{k}: must be text (got {quote(v)})" for k, v in thresholds.items()
                 if k in TEXT_THRESHOLD_KEYS and not isinstance(v, str)]
    problems += reference_problems(reference)
    if problems:
        raise SettingsError(f"context file {context_file} has invalid values:\n  " + "\n  ".join(problems))
