"""`--engine local|ray`, `--ray-address` and `--ray-actors`, shared by the commands that run Stage 2."""
from __future__ import annotations

import importlib.util
from typing import Annotated, Optional

import typer

from iapas.engines import ENGINES, EngineChoice, RaySettings
from iapas.errors import SettingsError

EngineOpt = Annotated[str, typer.Option("--engine", help="where Stage 2 runs: local (this process) or ray (a Ray cluster, pip install 'iapas\\[ray]')")]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join: auto, HOST:6379 or ray://HOST:10001 (default: start Ray on this machine)")]
RayActorsOpt = Annotated[Optional[int], typer.Option("--ray-actors", help="model workers in the Ray actor pool (default: one per CPU, or two per GPU)")]


def engine_choice(engine: str, ray_address: str | None, ray_actors: int | None) -> EngineChoice:
    """Validate the engine flags before any model loads.

    Args:
        engine: `--engine` ("local" or "ray").
        ray_address: `--ray-address`.
        ray_actors: `--ray-actors`.

    Returns:
        The engine choice.

    Raises:
        SettingsError: an unknown engine, Ray flags without Ray, fewer than one actor, or Ray not installed.
    """
    name = engine.strip().lower()
    if name not in ENGINES:
        raise SettingsError(f"--engine {engine!r} is not known; allowed: {', '.join(ENGINES)}")
    if name != "ray" and (ray_address or ray_actors):
        raise SettingsError("--ray-address and --ray-actors need --engine ray")
    if ray_actors is not None and ray_actors < 1:
        raise SettingsError(f"--ray-actors {ray_actors} must be at least 1")
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise SettingsError("--engine ray needs Ray: pip install 'iapas[ray]'")
    return EngineChoice(name, RaySettings(address=ray_address, actors=ray_actors))
