"""Validation of an edited context file, as strict as the config (issue 12, item 6).

A context is meant to be reviewed and edited by hand, so `segment` must not trust it: a huge feature size
exhausts memory, a NaN or non-positive threshold produces nonsense scores (and NaN in JSON), and a bank
path outside the context's folder reads any file. Known fields are checked; fields added by newer
versions are left alone. Every problem is listed in one SettingsError (exit status 2).
"""
from __future__ import annotations

import math
import zipfile
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from pydantic import ValidationError

from iapas.config import PipelineConfig, quote
from iapas.errors import SettingsError

# reference.settings key -> the PipelineConfig field whose range applies
SETTINGS_AS_CONFIG = {"backbone": "backbone", "feature_size": "feature_size", "segment_size": "segment_size",
                      "stages": "reference_stages"}
# reference.settings keys without a config field: (kind, low, high), inclusive
SETTINGS_RANGES: dict[str, tuple[type, float, float]] = {
    "max_long_side": (int, 64, 4096),
    "pool": (int, 1, 15),
    "k": (int, 1, 64),
    "sigma": (float, 0.0, 64.0),
    "max_bank": (int, 1, 65536),
    "coreset": (float, 0.001, 1.0),
    "segment_smooth": (float, 0.0, 64.0),
}
MAX_SEGMENT_LEVELS = 8
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


def _in_range(value: Any, kind: type, low: float, high: float) -> bool:
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        return False
    return _finite(value) and low <= value <= high


def settings_problems(settings: Any) -> list[str]:
    """Problems of reference.settings (how features are extracted and scored)."""
    if not isinstance(settings, dict):
        return [f"reference.settings must be a mapping, got {type(settings).__name__}"]
    problems = []
    for key, field in SETTINGS_AS_CONFIG.items():
        if key in settings and (why := _as_config(field, settings[key])):
            problems.append(f"reference.settings.{key}: {why} (got {quote(settings[key])})")
    stages = settings.get("stages")
    if isinstance(stages, list) and not (stages and all(isinstance(s, int) and 0 <= s <= 6 for s in stages)):
        problems.append(f"reference.settings.stages: backbone stages 0..6, at least one (got {quote(stages)})")
    for key, (kind, low, high) in SETTINGS_RANGES.items():
        if key in settings and not _in_range(settings[key], kind, low, high):
            problems.append(f"reference.settings.{key}: allowed {kind.__name__} in [{low:g}, {high:g}] (got {quote(settings[key])})")
    pool = settings.get("pool")
    if isinstance(pool, int) and pool % 2 == 0:
        problems.append(f"reference.settings.pool: must be odd (got {pool})")
    levels = settings.get("segment_levels", [])
    ok = isinstance(levels, list) and len(levels) <= MAX_SEGMENT_LEVELS and all(
        isinstance(lv, list | tuple) and len(lv) == 3 and _finite(lv[0], 0.0, True) and lv[0] <= 100_000
        and _finite(lv[1], 0.0) and lv[1] <= 64 and isinstance(lv[2], int) and 1 <= lv[2] <= 1_000_000
        for lv in levels
    )
    if not ok:
        problems.append(
            f"reference.settings.segment_levels: up to {MAX_SEGMENT_LEVELS} [Felzenszwalb scale in (0, 100000], "
            f"sigma in [0, 64], min_size in [1, 1000000]] (got {quote(levels)})"
        )
    return problems


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


def load_bank(context_file: Path, bank: Path) -> dict[str, np.ndarray]:
    """The bank arrays, checked: an npz holding finite 2-D features and one integer source per row."""
    if not bank.is_file():
        raise SettingsError(f"context {context_file} refers to {bank}, which is missing")
    try:
        loaded = np.load(bank, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
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
