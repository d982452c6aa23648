"""Contexts written by the previous version of iapas (tests/fixtures/base_contexts, made by make_contexts.py there
with the code of tag base-21) load into the typed records and are written back byte for byte; an unknown field
is refused with the file and the field named."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from iapas.context import Context, Fidelity
from iapas.errors import SettingsError
from iapas.settings import MutualConfig, ReferenceSettings, feature_width

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "base_contexts"
# the bank sidecar of offline.json, as the previous version wrote it (shapes from its settings; values random)
BANK = {"bank_features": (48, 512), "bank_source": (48,), "position_features": (3, 2, 2, 512)}


def copy_context(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = shutil.copy(FIXTURES / name, folder / name)
    if name == "offline.json":
        rng = np.random.default_rng(0)
        np.savez(folder / "offline.bank.npz", bank_features=rng.normal(size=BANK["bank_features"]).astype(np.float32),
                 bank_source=np.arange(48) % 3, position_features=rng.normal(size=BANK["position_features"]).astype(np.float32))
    return Path(path)


@pytest.mark.parametrize("name", ["offline.json", "zero_shot.json", "paper.json"])
def test_previous_contexts_load_typed_and_save_unchanged(tmp_path: Path, name: str) -> None:
    ctx = Context.load(copy_context(name, tmp_path / "in"))
    (tmp_path / "out").mkdir()
    saved = ctx.save(tmp_path / "out" / name)
    assert saved.read_text() == (FIXTURES / name).read_text()  # same keys, same order, same values


def test_previous_records_are_typed(tmp_path: Path) -> None:
    offline = Context.load(copy_context("offline.json", tmp_path))
    ref = offline.reference
    assert isinstance(ref.settings, ReferenceSettings) and feature_width(ref.settings.backbone, ref.settings.stages) == 512
    assert ref.bank_file == "offline.bank.npz" and len(ref.normal_image_max or []) == 3 and ref.alignment is not None
    assert offline.kind_choice is not None and offline.kind_choice["kind"] == offline.config.kind
    zero = Context.load(copy_context("zero_shot.json", tmp_path))
    assert zero.reference.mode == "zero-shot" and isinstance(zero.reference.mutual, MutualConfig)
    assert zero.reference.batch is not None and len(zero.reference.batch) == 4
    paper = Context.load(copy_context("paper.json", tmp_path))
    assert isinstance(paper.fidelity, Fidelity) and paper.fidelity.tagger == "none"
    assert paper.fidelity.thresholds == "paper" and paper.fidelity.max_phrases is None
    assert "max_phrases" in paper.model_dump(mode="json")["fidelity"]  # written as it was given (null)


@pytest.mark.parametrize(("where", "key"), [((), "colour"), (("reference",), "mean_grey"), (("fidelity",), "tone")])
def test_an_unknown_field_is_refused(tmp_path: Path, where: tuple[str, ...], key: str) -> None:
    path = copy_context("paper.json" if where == ("fidelity",) else "zero_shot.json", tmp_path)
    data = json.loads(path.read_text())
    node = data
    for part in where:
        node = node[part]
    node[key] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError) as info:
        Context.load(path)
    assert str(path) in str(info.value) and key in str(info.value)
