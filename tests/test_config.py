"""Settings: paper defaults, validation before any model loads, file + flag precedence."""
from __future__ import annotations

from pathlib import Path

from iapas.config import PipelineConfig, build_config, settings_digest


def test_paper_defaults() -> None:
    c = PipelineConfig()
    assert (c.num_normal, c.seed, c.nms_iou, c.size_threshold) == (10, 111, 0.5, 0.8)
    from iapas.settings import thresholds

    assert (thresholds(c).box_threshold, thresholds(c).text_threshold) == (0.2, 0.2)
    t = thresholds(PipelineConfig(kind="texture"))
    assert (t.box_threshold, t.text_threshold) == (0.1, 0.1)
    assert thresholds(PipelineConfig(kind="texture", box_threshold=0.3)).box_threshold == 0.3


# invalid values and config-file errors: one table each in test_settings_validation.py (API and CLI)


def test_file_then_flags(tmp_path: Path) -> None:
    yml = tmp_path / "c.yaml"
    yml.write_text("kind: texture\nseed: 5\nsize-threshold: 0.6\n")
    toml = tmp_path / "c.toml"
    toml.write_text('kind = "texture"\nseed = 5\n')
    c = build_config(yml, seed=7)
    assert (c.kind, c.seed, c.size_threshold) == ("texture", 7, 0.6)
    assert build_config(toml).seed == 5


def test_settings_digest_changes_with_what_matters() -> None:
    a = PipelineConfig()
    assert settings_digest(a, "offline") == settings_digest(PipelineConfig(), "offline")
    assert settings_digest(a, "offline") != settings_digest(a, "paper")
    assert settings_digest(a, "offline") != settings_digest(PipelineConfig(seed=1), "offline")
    assert settings_digest(a, "offline") == settings_digest(PipelineConfig(threads=3), "offline")
