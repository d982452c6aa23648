"""The one model loader (models.loading): every kind of model shares one cache, one lock and one error policy."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from iapas.config import DEFAULT_LLM, PipelineConfig
from iapas.errors import ModelLoadError
from iapas.models import hub
from iapas.models.loading import cache_size, clear_model_cache
from iapas.settings import llm_settings
from iapas.models.llm import load_llm
from iapas.models.tagger import load_tagger


@pytest.fixture
def hub_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the hub is reachable (nothing is contacted: the tests fake every hub answer)."""
    monkeypatch.setattr(hub, "hub_offline", lambda: False)


def _gated(*_args: object, **_kwargs: object) -> None:
    """What transformers raises for a gated repo without a token: an OSError caused by GatedRepoError."""
    from huggingface_hub.errors import GatedRepoError

    err = OSError("You are trying to access a gated repo. Make sure to have access to it.")
    err.__cause__ = GatedRepoError("401 Client Error", response=SimpleNamespace(headers={}, status_code=401, request=None, url=""))
    raise err


def test_tagger_loads_once_and_clear_reloads(tiny_clip_dir: str, fresh_model_cache: None) -> None:
    first = load_tagger(tiny_clip_dir, "cpu")
    assert load_tagger(tiny_clip_dir + "/", "cpu") is first  # same folder, same object
    assert cache_size() == 2  # the tagger and its (model, processors) pair, in the one cache
    clear_model_cache()
    assert cache_size() == 0
    again = load_tagger(tiny_clip_dir, "cpu")
    assert again is not first and again.model is not first.model  # type: ignore[attr-defined]


def test_llm_loads_once_and_clear_reloads(tiny_lm_dir: str, fresh_model_cache: None) -> None:
    cfg = PipelineConfig(llm=tiny_lm_dir, device="cpu")
    first = load_llm(llm_settings(cfg))
    assert first is not None and load_llm(llm_settings(cfg)) is first and cache_size() == 1
    clear_model_cache()
    assert load_llm(llm_settings(cfg)) is not first


def test_server_llm_is_in_the_same_cache(fresh_model_cache: None) -> None:
    cfg = PipelineConfig(llm="OpenAI:m", llm_base_url="http://127.0.0.1:9/v1")  # built, never contacted
    first = load_llm(llm_settings(cfg))
    assert first is not None and first.model_id == "m" and load_llm(llm_settings(cfg)) is first
    clear_model_cache()
    assert load_llm(llm_settings(cfg)) is not first


def test_backbone_is_in_the_same_cache(fresh_model_cache: None) -> None:
    from iapas.models.backbone import backbone_available, load_backbone

    assert backbone_available("efficientnet-lite0"), "the packaged backbone is a hard dependency of iapas"
    first = load_backbone("efficientnet-lite0", "cpu")
    assert load_backbone("efficientnet-lite0", "cpu") is first and cache_size() == 1
    clear_model_cache()
    assert load_backbone("efficientnet-lite0", "cpu") is not first


def test_gated_default_llm_says_how_to_get_access(monkeypatch: pytest.MonkeyPatch, hub_answers: None,
                                                  fresh_model_cache: None) -> None:
    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", _gated)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", _gated)
    with pytest.raises(ModelLoadError) as err:
        load_llm(llm_settings(PipelineConfig(device="cpu")))  # the default: gated Llama-3
    assert err.value.model == DEFAULT_LLM and "gated" in err.value.why and "not found" not in str(err.value)
    assert "HF_TOKEN" in err.value.todo and "hf auth login" in err.value.todo and DEFAULT_LLM in err.value.todo
    assert cache_size() == 0  # a failure is not cached: a new token works on the next call


def test_gated_tagger_gets_the_same_message(monkeypatch: pytest.MonkeyPatch, hub_answers: None,
                                            fresh_model_cache: None) -> None:
    import transformers

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", _gated)
    with pytest.raises(ModelLoadError, match="gated") as err:
        load_tagger("some-org/gated-clip", "cpu")
    assert "HF_TOKEN" in err.value.todo


def test_uncached_llm_offline_fails_at_once_with_the_offline_message(fresh_model_cache: None) -> None:
    # HF_HUB_OFFLINE=1 (conftest): the LLM follows the loader's offline rule like the detector
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache") as err:
        load_llm(llm_settings(PipelineConfig(llm="iapas-test-org/no-such-llm", device="cpu")))
    assert "--profile offline" in str(err.value)


def test_resolve_does_not_import_the_loader() -> None:
    """models.resolve is below models.loading: importing it alone must not pull the loader in (no cycle)."""
    code = "import sys, iapas.models.resolve; print('iapas.models.loading' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
