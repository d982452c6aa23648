"""Is the Hugging Face hub usable right now? Decided once per process, quickly, before any model load.

Without this, transformers retries an unreachable hub for about half a minute per model, even when
the model is already in the local cache. With offline mode set (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)
or no TCP connection to the endpoint within a few seconds, cached models load with
local_files_only=True and uncached ones fail at once with a clear error.
"""
from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

_TRUE = ("1", "true", "yes", "on")
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def offline_mode_set() -> bool:
    """The user (or a test) asked huggingface_hub / transformers to stay offline."""
    from huggingface_hub import constants

    env = any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return env or bool(constants.HF_HUB_OFFLINE)


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connection attempt to the hub endpoint; behind a proxy we cannot tell, so assume yes."""
    if any(os.environ.get(k) for k in _PROXY_VARS):
        return True
    from huggingface_hub import constants

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
