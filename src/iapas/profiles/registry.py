"""The profile registry: `@register_profile("name")` on a `Profile` subclass, as the dataset readers register.

Built-in profiles register on the first lookup (their modules import the stages, scipy and the model
loaders, which `iapas --help` does not need). Profiles of other packages register through
the entry point group `iapas.profiles` (each entry point names a module, imported on first lookup), and,
for tests and local experiments, through `IAPAS_PROFILE_MODULES`: a comma-separated list of importable
module names.
"""
from __future__ import annotations

import functools
import importlib
import os
from importlib.metadata import entry_points

from iapas.config import PipelineConfig
from iapas.errors import SettingsError
from iapas.profiles.base import _REGISTRY, Profile, register_profile  # noqa: F401 - register_profile re-exported

ENTRY_POINT_GROUP = "iapas.profiles"
MODULES_ENV = "IAPAS_PROFILE_MODULES"

_loaded_plugins: set[str] = set()


@functools.cache
def _entry_point_modules() -> tuple[str, ...]:
    """Modules named by the installed `iapas.profiles` entry points, scanned once per process (a scan of
    every installed package's metadata costs milliseconds, and profiles are looked up per image)."""
    return tuple(ep.value.split(":")[0] for ep in entry_points(group=ENTRY_POINT_GROUP))


def _load_plugins() -> None:
    """Import the built-in profiles, then the entry points' modules and the env var's modules (each once)."""
    # heavy (the stages, scipy, torch and the model loaders): imported on the first lookup so that the
    # config checks and `iapas --help` stay light; import-linter sees these edges (no cycle: the built-ins
    # import only profiles.base, where the decorator lives)
    from iapas.profiles import fused, offline, paper  # noqa: F401  (each registers itself)

    names = [*_entry_point_modules()]
    names += [m.strip() for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]
    for module in names:
        if module in _loaded_plugins:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SettingsError(f"profile module {module!r} (from {MODULES_ENV} or the {ENTRY_POINT_GROUP!r} "
                                f"entry points) cannot be imported: {exc}") from None
        _loaded_plugins.add(module)


def profile_names() -> list[str]:
    """Every registered profile name, sorted."""
    _load_plugins()
    return sorted(_REGISTRY)


def profile_class(name: str) -> type[Profile]:
    """The class registered under `name`.

    Raises:
        SettingsError: no profile of that name, with the allowed names.
    """
    _load_plugins()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise SettingsError(f"unknown profile {name!r}; allowed: {', '.join(sorted(_REGISTRY))}")
    return cls


def batch_profiles() -> list[str]:
    """Names of the profiles that have a batch (zero-shot) mode, in registration order (built-in first: the
    first is the one zero-shot mode uses when no profile is given)."""
    _load_plugins()
    return [n for n, cls in _REGISTRY.items() if cls.batch_runner is not None]


def check_profile(config: PipelineConfig) -> None:
    """Refuse a config whose profile is not registered or cannot work with its other settings.

    Raises:
        SettingsError: naming the field, its flag and the registered names.
    """
    if config.profile is None:
        return
    if config.profile not in profile_names():
        allowed = [repr(n) for n in profile_names()]
        listed = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else "".join(allowed)
        raise SettingsError(f"invalid settings:\n  profile (--profile): unknown profile; allowed: {listed} "
                            f"(got {config.profile!r})")
    profile_class(config.profile).check_config(config)
