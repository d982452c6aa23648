"""Settings: paper defaults, validation before any model loads, file + flag precedence."""
from __future__ import annotations

from pathlib import Path

import pytest

from iapas.config import PipelineConfig, build_config, settings_digest
from iapas.errors import SettingsError


def test_paper_defaults() -> None:
    c = PipelineConfig()
    assert (c.num_normal, c.seed, c.nms_iou, c.size_threshold) == (10, 111, 0.5, 0.8)
    from iapas.settings import thresholds

    assert (thresholds(c).box_threshold, thresholds(c).text_threshold) == (0.2, 0.2)
    t = thresholds(PipelineConfig(kind="texture"))
    assert (t.box_threshold, t.text_threshold) == (0.1, 0.1)
    assert thresholds(PipelineConfig(kind="texture", box_threshold=0.3)).box_threshold == 0.3


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"box_threshold": 1.5}, "box_threshold"),
        ({"text_threshold": -0.1}, "text_threshold"),
        ({"size_threshold": 0.0}, "size_threshold"),
        ({"num_normal": 0}, "num_normal"),
        ({"profile": "gpu"}, "'paper', 'offline' or 'fused'"),
        ({"kind": "liquid"}, "'object' or 'texture'"),
        ({"detector": "  "}, "detector"),
        ({"profile": "paper", "tagger": "none"}, "--object"),
    ],
)
def test_invalid_settings_name_field_and_allowed_values(bad: dict, needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        build_config(**bad)
    assert needle in str(info.value)


def test_file_then_flags(tmp_path: Path) -> None:
    yml = tmp_path / "c.yaml"
    yml.write_text("kind: texture\nseed: 5\nsize-threshold: 0.6\n")
    toml = tmp_path / "c.toml"
    toml.write_text('kind = "texture"\nseed = 5\n')
    c = build_config(yml, seed=7)
    assert (c.kind, c.seed, c.size_threshold) == ("texture", 7, 0.6)
    assert build_config(toml).seed == 5


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        build_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(SettingsError, match="mapping"):
        build_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 3\n")
    with pytest.raises(SettingsError, match="colour"):
        build_config(unknown)


def test_settings_digest_changes_with_what_matters() -> None:
    a = PipelineConfig()
    assert settings_digest(a, "offline") == settings_digest(PipelineConfig(), "offline")
    assert settings_digest(a, "offline") != settings_digest(a, "paper")
    assert settings_digest(a, "offline") != settings_digest(PipelineConfig(seed=1), "offline")
    assert settings_digest(a, "offline") == settings_digest(PipelineConfig(threads=3), "offline")
