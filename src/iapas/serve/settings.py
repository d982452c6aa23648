"""The server's limits and switches (set from `iapas serve` flags)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

TOKEN_ENV = "IAPAS_SERVE_TOKEN"
MIN_MAP_PIXELS = 250_000  # --map-pixels below this (500 x 500) would score parts on a thumbnail


@dataclass(frozen=True)
class ServeSettings:
    """Limits that keep one bad or greedy client from taking the station down."""

    max_upload_bytes: int = 20_000_000  # a 20 MB file is far above any line camera's frame
    max_pixels: int = 50_000_000  # pixels announced by the image header (e.g. 8192 x 6100)
    queue_size: int = 8  # requests allowed to wait for a model worker; more get 503
    timeout_s: float = 30.0  # from arrival to answer; a request still waiting then gets 504
    body_timeout_s: float = 10.0  # a request body not complete this long after its headers gets 408
    max_uploads: int = 32  # bodies being received at once; more get 503 at once (probes are never refused)
    decode_pixels: int | None = None  # image pixels decoding at once; None = max_pixels (one largest image)
    map_pixels: int | None = 8_000_000  # larger images (as loaded) are scored at this size, answers scaled; None = never
    drain_s: float = 20.0  # on SIGTERM: seconds requests in flight may take to finish (under Kubernetes' 30 s)
    token: str | None = field(default=None, repr=False)  # bearer token; None = no authentication
    devices: tuple[str | None, ...] = (None,)  # one model worker per entry (None: the context's device)


    @property
    def pixel_budget(self) -> int:
        return self.decode_pixels or self.max_pixels


def token_from_env(name: str = TOKEN_ENV, required: bool = False) -> str | None:
    """The bearer token from the environment (never from a flag: flags show up in `ps`).

    Raises:
        SettingsError: when `required` (the variable was named with --token-env) and it is unset or empty, so
            a typo never leaves the API open.
    """
    value = os.environ.get(name, "").strip()
    if required and not value:
        from iapas.errors import SettingsError

        raise SettingsError(f"--token-env {name}: that environment variable is not set (or empty), so the API would "
                            "have no token; export it, or leave --token-env out to serve without one on 127.0.0.1")
    return value or None
