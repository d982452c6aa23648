"""Up-front checks of model references, run before any model loads.

An unknown model id or a mistyped path should cost the user one message and exit status 2 at once, not a
model download attempt or a half-finished Stage 1; and every missing model is named in that one message
(with the command that fetches it and how to point at a local copy), so a user does not fix one model
only to meet the next. No torch import: a reference is accepted when it is an existing local path, a
Hugging Face id in the local cache, or a well-formed id while the hub answers (then loading downloads it).
`iapas doctor` prints the same list.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from iapas.config import PipelineConfig
from iapas.errors import SettingsError
from iapas.modelref import ModelRef, RefKind
from iapas.models import hub
from iapas.profiles.base import STAGE1_ROLES
from iapas.profiles.registry import profile_class

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?$")


@dataclass(frozen=True)
class MissingModel:
    """A model reference that cannot load here, why, and what to do about it."""

    flag: str  # e.g. "--detector"
    ref: str
    reason: str
    fetch: str | None = None  # the command that downloads it with the installed huggingface_hub, for hub ids
    note: str | None = None  # e.g. the model is gated: licence, login and an open alternative

    def text(self) -> str:
        out = f"{self.flag} '{self.ref}': {self.reason}"
        if self.note:
            out += f"\n      {self.note}"
        if self.fetch:
            name = self.ref.rsplit("/", 1)[-1]
            out += (f"\n      fetch it where the hub is reachable: {self.fetch}"
                    f"\n      or point at a local copy: {self.flag} /path/to/{name} "
                    f"(e.g. from `{self.fetch} --local-dir /path/to/{name}`)")
        return out


def models_used(config: PipelineConfig, profile: str, stage2_only: bool = False) -> frozenset[str]:
    """Roles of the models `profile` loads with these settings (`Profile.models`, without the Stage 1 ones
    for `iapas segment` (`stage2_only`) and for the baseline, which tags nothing and asks no LLM)."""
    roles = profile_class(profile).models
    if stage2_only or config.baseline:
        roles = roles - STAGE1_ROLES
    return roles


def model_roles(config: PipelineConfig, profile: str, stage2_only: bool = False) -> dict[str, ModelRef]:
    """Flag -> reference of every model the profile will load from a hub id, folder or file with these
    settings (`stage2_only`: `iapas segment`, which loads no tagger or LLM). Keyword references (none,
    smollm2, ram, a server) are not listed: they have no weights to find here; the backbone is checked
    on its own (`_backbone_problems`)."""
    used = models_used(config, profile, stage2_only)
    roles: dict[str, ModelRef] = {}
    for role in ("detector", "segmenter"):
        if role in used:
            roles[f"--{role}"] = getattr(config, f"{role}_ref")
    if "tagger" in used:
        from iapas.models.tagger import preferred_tagger  # RAM replaces the default CLIP when installed

        tagger = ModelRef.parse(preferred_tagger(config.tagger), "tagger")
        if tagger.loads_weights and not config.object_name:
            roles["--tagger"] = config.tagger_ref
    if "llm" in used and config.llm_ref.loads_weights and config.llm_server_model is None:
        roles["--llm"] = config.llm_ref
    return roles


def _problem(flag: str, ref: ModelRef, offline: bool | None) -> MissingModel | None:
    """Why `ref` cannot be loaded, or None when it can (or may: the hub answers and loading downloads it).
    `offline` None: find out only when needed (one quick connection attempt per process)."""
    from iapas.models.resolve import describe_model

    if ref.is_none:
        return MissingModel(flag, ref.text, f"the profile needs a {flag.lstrip('-')}; 'none' only skips --tagger or --llm")
    if describe_model(ref)["source"] in ("local", "cache"):
        return None
    if ref.kind is not RefKind.HUB or Path(ref.name).expanduser().is_absolute():
        return MissingModel(flag, ref.text, "no such local file or folder")
    if not HUB_ID.match(ref.name):
        return MissingModel(flag, ref.text, "neither an existing local folder nor a valid Hugging Face id (org/name)")
    if offline if offline is not None else hub.hub_offline():
        return MissingModel(flag, ref.text, "not in the local Hugging Face cache, and the hub is offline or unreachable "
                            "(HF_HUB_OFFLINE=1, or no connection)", fetch=hub.download_command(ref.name),
                            note=hub.gated_note(ref.name) if hub.is_gated(ref.name) else None)
    return None


def missing_models(config: PipelineConfig, profile: str, stage2_only: bool = False,
                   offline: bool | None = None) -> list[MissingModel]:
    """Every model reference of `profile` that cannot load here (all of them, not just the first)."""
    roles = model_roles(config, profile, stage2_only)
    problems = [p for flag, ref in roles.items() if (p := _problem(flag, ref, offline))]
    used = models_used(config, profile, stage2_only)
    if "llm" in used and config.llm_ref.kind is RefKind.OPENAI and not config.llm_base_url:
        problems.append(MissingModel("--llm", config.llm, "an OpenAI-compatible server needs --llm-base-url URL"))
    if "backbone" in used:
        problems.extend(MissingModel("--backbone", config.backbone, p) for p in _backbone_problems(config.backbone))
    return problems


class ModelsMissing(SettingsError):
    """Models of the chosen profile cannot load here (exit status 2); `missing` lists every one."""

    def __init__(self, message: str, missing: list[MissingModel]) -> None:
        super().__init__(message)
        self.missing = missing


def check_models(config: PipelineConfig, profile: str, stage2_only: bool = False) -> None:
    """Raise ModelsMissing naming every model reference that cannot load, each with what to do; refuse an
    LLM server URL that the API key must not be sent to."""
    if config.llm_base_url and "llm" in profile_class(profile).models and not stage2_only:
        _check_llm_server(config)
    problems = missing_models(config, profile, stage2_only)
    if problems:
        raise ModelsMissing(
            f"{len(problems)} model(s) not available for the {profile} profile (nothing was loaded):\n  "
            + "\n  ".join(p.text() for p in problems) + "\n  allowed: a local model folder, a Hugging "
            "Face id already in the local cache (`iapas doctor` lists them), or 'none' for --tagger/--llm; "
            "or use --profile offline, which needs no hub weights",
            problems,
        )


def _check_llm_server(config: PipelineConfig) -> None:
    """The server URL must be safe to send the API key to (https, or loopback, or an explicit opt-in)."""
    from iapas.models.llm import api_key_from_env
    from iapas.io.http import check_base_url

    if not config.llm_ref.is_none and not config.baseline:
        check_base_url(config.llm_base_url or "", bool(api_key_from_env()), config.llm_allow_insecure_http)


def _backbone_problems(name: str) -> list[str]:
    """The offline profile's packaged ImageNet weights must be installed (checked without importing torch)."""
    from iapas.models.backbone import WEIGHT_PACKAGES

    if name not in WEIGHT_PACKAGES:
        return [f"unknown backbone; allowed: {', '.join(WEIGHT_PACKAGES)}"]
    module, _, pip_name = WEIGHT_PACKAGES[name]
    missing = [m for m in (module, "efficientnet_lite_pytorch") if importlib.util.find_spec(m) is None]
    if missing:
        return [f"package(s) {', '.join(missing)} not installed (pip install {pip_name} efficientnet-lite-pytorch)"]
    return []
