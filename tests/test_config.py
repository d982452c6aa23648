"""Settings: paper defaults, validation before any model loads, file + flag precedence."""
from __future__ import annotations

from pathlib import Path

from iapas.config import PipelineConfig, build_config, settings_digest


def test_paper_defaults() -> None:
    c = PipelineConfig()
    assert (c.num_normal, c.seed, c.nms_iou, c.size_threshold) == (10, 111, 0.5, 0.8)
    assert c.effective_box_threshold == 0.2 and c.effective_text_threshold == 0.2
    t = PipelineConfig(kind="texture")
    assert t.effective_box_threshold == 0.1 and t.effective_text_threshold == 0.1
    assert PipelineConfig(kind="texture", box_threshold=0.3).effective_box_threshold == 0.3


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
    assert settings_digest(a, "offline") == settings_digest(PipelineConfig(batch_size=3), "offline")
