"""Issue 12, items 1 and 13: the LLM API key never leaves for a host the user did not name.

Real HTTP servers on 127.0.0.1: one answers every POST with a redirect to a second one; the second
records whatever reaches it. A key that followed the redirect would show up there.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from iapas.config import build_config
from iapas.context import Context
from iapas.errors import ModelLoadError, SettingsError
from iapas.settings import llm_settings
from iapas.models.llm import OpenAICompatLLM, load_llm
from loopback_http import LoopbackServer, QuietHandler

pytestmark = pytest.mark.slow  # end to end: left out of the `-m "not slow"` loop, run in CI

MESSAGES = [{"role": "system", "content": "list words"}, {"role": "user", "content": "defects of a tile?"}]
KEY = "sk-secret-test-key-123"


class Recorder(LoopbackServer):
    """A 127.0.0.1 server that records each request's headers and answers with `status` (+ Location)."""

    def __init__(self, status: int = 200, location: str | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append(dict(self.headers))
                self.send_json(status, {"choices": [{"message": {"content": "evil words"}}]},
                               {"Location": location} if location else None)

            do_GET = do_POST  # noqa: N815 - a 303 makes clients switch to GET

        super().__init__(Handler)


@pytest.mark.parametrize("status", [302, 307])
def test_item01_redirect_not_followed(status: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAPAS_LLM_API_KEY", KEY)
    with Recorder() as other:
        # "localhost" for the target: another origin than 127.0.0.1 for a browser, same machine for the test
        target = other.url.replace("127.0.0.1", "localhost") + "/steal"
        with Recorder(status, location=target) as first:
            cfg = build_config(llm=f"openai:m{status}", llm_base_url=first.url + "/v1", llm_retries=2)
            backend = load_llm(llm_settings(cfg))
            assert isinstance(backend, OpenAICompatLLM)
            with pytest.raises(ModelLoadError) as info:
                backend.chat(MESSAGES, 16)
    assert len(first.requests) == 1  # not retried
    assert first.requests[0]["Authorization"] == f"Bearer {KEY}"
    assert other.requests == []  # nothing, and so no Authorization header, reached the target
    msg = str(info.value)
    assert target in msg and str(status) in msg
    assert KEY not in msg


def test_item13_redirect_error_says_one_attempt() -> None:
    with Recorder(307, location="http://example.invalid/v1/chat/completions") as srv:
        backend = OpenAICompatLLM(srv.url + "/v1", "m", timeout=5, retries=2, backoff=0.0)
        with pytest.raises(ModelLoadError) as info:
            backend.chat(MESSAGES, 16)
    assert len(srv.requests) == 1
    assert "1 attempt(s)" in str(info.value) and "3 attempt" not in str(info.value)


def test_item01_plain_http_with_key_refused_unless_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="plain http.*--llm-allow-insecure-http"):
        OpenAICompatLLM("http://llm.example.com/v1", "m", api_key=KEY)
    OpenAICompatLLM("http://llm.example.com/v1", "m", api_key=KEY, allow_insecure_http=True)
    OpenAICompatLLM("https://llm.example.com/v1", "m", api_key=KEY)
    OpenAICompatLLM("http://127.0.0.1:9/v1", "m", api_key=KEY)  # loopback: the key stays on the machine
    OpenAICompatLLM("http://llm.example.com/v1", "m")  # no key, nothing to leak
    # the same rule through the config, before any model loads
    from iapas.preflight import check_models

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cfg = build_config(profile="paper", llm="openai:m", llm_base_url="http://llm.example.com/v1", tagger="none",
                       object_name="tile", detector=str(Path(__file__)), segmenter=str(Path(__file__)))
    with pytest.raises(SettingsError, match="plain http"):
        check_models(cfg, "paper")
    check_models(cfg.model_copy(update={"llm_allow_insecure_http": True}), "paper")


def test_item01_url_password_never_echoed_or_saved(tmp_path: Path) -> None:
    url_pw = "hunter2-pw"
    with Recorder(503) as srv:
        url = srv.url.replace("http://", f"http://alice:{url_pw}@") + "/v1"
        backend = OpenAICompatLLM(url, "m", timeout=5, retries=0, backoff=0.0)
        with pytest.raises(ModelLoadError) as info:
            backend.chat(MESSAGES, 16)
    assert url_pw not in str(info.value) and "alice" not in str(info.value) and "127.0.0.1" in str(info.value)
    assert srv.requests[0]["Authorization"].startswith("Basic ")  # sent as auth to that origin only
    cfg = build_config(llm="openai:m", llm_base_url=url)
    ctx = Context(profile="offline", config=cfg)
    ctx.save(tmp_path / "context.json")
    saved = (tmp_path / "context.json").read_text()
    assert url_pw not in saved and "***@127.0.0.1" in saved
    with pytest.raises(SettingsError) as bad:  # a validation error quoting the URL hides it too
        build_config(llm_base_url=url.replace("http://", "ftp://"))
    assert url_pw not in str(bad.value)
    from iapas.cli.doctor import describe_role

    assert url_pw not in json.dumps(describe_role("llm", "openai:m", cfg))
