"""Resolve the configured device and dtype ("auto" included) to what torch can run here.

"auto" picks the fastest available device (CUDA, then Apple MPS, then CPU). The auto dtype is half
precision on GPUs, where it halves memory and is well supported (bfloat16 when the card has it,
float16 otherwise), and float32 on CPU, where half precision is slow or missing for many kernels.
Grounding DINO and SAM never receive "auto": `iapas.settings.stage2_dtype` gives them float32 (the
official IAP-AS precision) unless `--dtype` names another; the LLM uses this rule.
torch is imported inside the functions so importing this module stays cheap.
"""
from __future__ import annotations

from typing import Any

from iapas.errors import SettingsError

DTYPE_NAMES = ("float32", "float16", "bfloat16")


def resolve_device(name: str = "auto") -> str:
    """'auto' -> 'cuda' | 'mps' | 'cpu'; an explicit device that is not available raises SettingsError."""
    import torch  # torch: heavy, loaded only when a model runs


    name = (name or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if mps_ok else "cpu"
    if name == "cpu":
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"device '{name}' requested but no CUDA GPU is available; use --device cpu or auto")
        return name
    if name == "mps":
        if not mps_ok:
            raise SettingsError("device 'mps' requested but Apple MPS is not available; use --device cpu or auto")
        return name
    raise SettingsError(f"unknown device '{name}'; allowed: auto, cpu, cuda, cuda:N, mps")


def resolve_dtype(name: str, device: str) -> Any:
    """Torch dtype for `name` on `device`; 'auto' = bf16/fp16 on GPUs, float32 on CPU."""
    import torch  # torch: heavy, loaded only when a model runs


    name = (name or "auto").strip().lower()
    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device == "mps":
            return torch.float16
        return torch.float32
    if name not in DTYPE_NAMES:
        raise SettingsError(f"unknown dtype '{name}'; allowed: auto, {', '.join(DTYPE_NAMES)}")
    return getattr(torch, name)


def dtype_name(dtype: Any) -> str:
    """'float32' for torch.float32 (for cache keys, logs and context files)."""
    return str(dtype).replace("torch.", "")
