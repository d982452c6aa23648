"""The HTTP transport of the OpenAI-compatible LLM client, kept apart so its security rules live in one place.

Why these rules: the request carries the API key, so it must never reach a host the user did
not name. Redirects are never followed (a 3xx is an error naming its target), plain http is refused for
credentials sent to a non-loopback host unless the user opts in, and `user:pass@` in a base URL is sent as
Basic auth to that origin only and is never shown in a message or saved.
"""
from __future__ import annotations

import base64
import ipaddress
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from iapas.errors import SettingsError

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
REDACTED = "***"


class RedirectRefused(Exception):
    """The server answered 3xx; the client does not follow it (the key would go along)."""

    def __init__(self, code: int, target: str) -> None:
        self.code = code
        self.target = target
        super().__init__(f"HTTP {code} redirect to {target} not followed")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turn every redirect into an HTTPError instead of a second request."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def redact_url(url: str | None) -> str | None:
    """The URL with any `user:pass@` replaced by `***@`, for messages, contexts and reports."""
    if not url or "@" not in url:
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return REDACTED
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """(URL without userinfo, headers carrying it as Basic auth): urllib would put it in the Host line."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    host = parts.netloc.rsplit("@", 1)[1]
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), {"Authorization": f"Basic {token}"}


def is_loopback(host: str | None) -> bool:
    """True for localhost names and 127.0.0.0/8 or ::1 addresses (traffic that never leaves the machine)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, has_key: bool, allow_insecure_http: bool = False) -> None:
    """Refuse URLs the client must not send a request (and a key) to; SettingsError names the problem."""
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        _ = parts.port  # a malformed port raises here
    except ValueError as exc:
        raise SettingsError(f"--llm-base-url {shown!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise SettingsError(f"--llm-base-url {shown!r} must be an http:// or https:// URL with a host")
    carries_secret = has_key or parts.username is not None or parts.password is not None
    if parts.scheme == "http" and carries_secret and not is_loopback(host) and not allow_insecure_http:
        raise SettingsError(
            f"--llm-base-url {shown!r}: refusing to send the API key or password over plain http to {host}; "
            "use https://, or pass --llm-allow-insecure-http (llm_allow_insecure_http: true) to accept the risk"
        )


def post_json(url: str, headers: dict[str, str], body: bytes, timeout: float) -> bytes:
    """POST `body` to `url` and return the response body. Never follows a redirect: a 3xx raises
    RedirectRefused naming the target; other HTTP errors raise urllib.error.HTTPError as usual."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            target = exc.headers.get("Location", "") if exc.headers is not None else ""
            exc.close()
            raise RedirectRefused(exc.code, redact_url(urllib.parse.urljoin(url, target)) or "(no Location)") from None
        raise
