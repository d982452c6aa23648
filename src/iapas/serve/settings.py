"""The server's limits and switches (set from `iapas serve` flags)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

TOKEN_ENV = "IAPAS_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """Limits that keep one bad or greedy client from taking the station down."""

    max_upload_bytes: int = 20_000_000  # a 20 MB file is far above any line camera's frame
    max_pixels: int = 50_000_000  # pixels announced by the image header (e.g. 8192 x 6100)
    queue_size: int = 8  # requests allowed to wait for a model worker; more get 503
    timeout_s: float = 30.0  # from arrival to answer; a request still waiting then gets 504
    token: str | None = field(default=None, repr=False)  # bearer token; None = no authentication
    devices: tuple[str | None, ...] = (None,)  # one model worker per entry (None: the context's device)


def token_from_env(name: str = TOKEN_ENV) -> str | None:
    """The bearer token from the environment (never from a flag: flags show up in `ps`)."""
    value = os.environ.get(name, "").strip()
    return value or None
