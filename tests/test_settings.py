"""Settings resolved once (iapas.settings), typed in the context, given once to profiles; one resume rule;
every config field reachable from a flag; one feature_size default; batch_size gone."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import iapas.pipeline
from cli_apps import command_app
from iapas.cli import options
from iapas.cli import run as run_cmd
from iapas.config import PipelineConfig, build_config
from iapas.context import Context
from iapas.errors import SettingsError
from iapas.io.resume import Stamp, matches
from iapas.pipeline import Pipeline, make_runner
from iapas.profiles.base import Profile
from iapas.profiles.registry import profile_class, profile_names
from iapas.settings import KIND_PRESETS, Calibration, ReferenceSettings, Settings, Thresholds, resolve
from synthetic_layouts import make_mtd

# A version-1 offline context exactly as iapas wrote it before this change (flat calibration keys, thresholds
# {}, config with batch_size), numbers from a real fit; the bank sidecar is written by the test.
OLD_OFFLINE = {
    "version": 1, "profile": "offline",
    "config": {"profile": "offline", "num_normal": 3, "feature_size": 64, "batch_size": 8},
    "normal_images": ["n0.png", "n1.png", "n2.png"], "normal_fingerprint": None, "seed": 111, "tags": [],
    "removed_tags": [], "object_tag": None, "llm_request": None, "llm_raw_answer": None, "defect_words": [],
    "final_prompt": [], "thresholds": {}, "models": {"backbone": {"id": "efficientnet-lite0", "revision": "pypi"}},
    "warnings": [],
    "reference": {
        "mode": "few-shot",
        "settings": {"backbone": "efficientnet-lite0", "feature_size": 64, "max_long_side": 1536, "stages": [2, 3],
                     "pool": 3, "normalize": "l2", "augment": ["auto"], "k": 1, "sigma": 4.0, "max_bank": 16384,
                     "segment_levels": [], "segment_size": 112, "segment_combine": "geometric", "segment_smooth": 0.5},
        "mask_threshold": 0.9068543910980225, "score_floor": 0.7475488185882568,
        "image_thresholds": [0.962611, 0.821129, 0.906854], "mask_percentile": 99.5, "floor_percentile": 90.0,
        "normal_pixel_mean": 0.6529392004013062, "normal_pixel_std": 0.07737797498703003,
        "normal_image_max": [0.9926978945732117, 0.829028844833374, 0.9326514005661011],
        "calibration": "leave-one-out on the normal images; median of per-image percentiles",
        "score_mapping": "score = e / (e + mask_threshold - score_floor), e = max(d - score_floor, 0), "
                         "d = nearest-neighbour distance to the bank",
        "bank_file": "ctx.bank.npz",
    },
}
OLD_PAPER_THRESHOLDS = {"box_threshold": 0.1, "text_threshold": 0.1, "nms_iou": 0.5, "size_threshold": 0.8}


def _old_context(folder: Path, **changes: object) -> Path:
    data = json.loads(json.dumps(OLD_OFFLINE))
    data.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.savez(folder / "ctx.bank.npz", bank_features=rng.normal(size=(12, 120)).astype(np.float32),  # lite0 stages 2+3: 40+80
             bank_source=(np.arange(12) % 3).astype(np.int32))
    path = folder / "ctx.json"
    path.write_text(json.dumps(data))
    return path


def test_old_context_loads_typed_and_saves_in_the_same_layout(tmp_path: Path) -> None:
    ctx = Context.load(_old_context(tmp_path / "a", thresholds=OLD_PAPER_THRESHOLDS))
    cal = ctx.reference.calibration
    assert isinstance(cal, Calibration) and cal.threshold == pytest.approx(0.9068543910980225)
    assert (cal.floor, cal.percentile, cal.floor_percentile) == (pytest.approx(0.7475488185882568), 99.5, 90.0)
    assert cal.method.startswith("leave-one-out")
    assert isinstance(ctx.reference.settings, ReferenceSettings) and ctx.reference.settings.stages == (2, 3)
    assert isinstance(ctx.thresholds, Thresholds) and ctx.thresholds.box_threshold == 0.1
    assert "batch_size" not in ctx.config.model_dump()  # the removed field of an older context is dropped
    (tmp_path / "b").mkdir()
    saved = json.loads(ctx.save(tmp_path / "b" / "ctx.json").read_text())
    old_ref = OLD_OFFLINE["reference"]  # the version-1 layout is kept on disk; settings gain later fields' defaults
    # an older context keeps the global bank only (position "off")
    later = {"coreset": 1.0, "position": "off", "position_window": 1, "position_combine": "position",
             "position_ratio": 0.35, "photometric": "none", "fine_stages": [], "scale_combine": "sum"}
    assert saved["reference"] == {**old_ref, "settings": {**old_ref["settings"], **later}}
    assert saved["thresholds"] == OLD_PAPER_THRESHOLDS and saved["version"] == 1


def test_old_context_without_floor_or_mode_still_scores(tmp_path: Path) -> None:
    ref = {k: v for k, v in OLD_OFFLINE["reference"].items() if k not in ("score_floor", "mode")}  # older still
    ctx = Context.load(_old_context(tmp_path, reference=ref))
    assert ctx.reference.mode is None and ctx.reference.calibration.floor == 0.0


def test_paper_thresholds_have_one_source(tmp_path: Path) -> None:
    """Stage 1 stores the resolved thresholds; an edit in the context is what Stage 2 and the verdict use."""
    from iapas.verdict import decision_threshold

    cfg = build_config(profile="paper", kind="texture", tagger="none", object_name="tile", llm="none")
    assert resolve(cfg).thresholds == Thresholds(box_threshold=0.1, text_threshold=0.1, nms_iou=0.5, size_threshold=0.8)
    ctx = Context(profile="paper", config=cfg, thresholds=resolve(cfg).thresholds.model_copy(update={"box_threshold": 0.35}))
    back = Context.load(ctx.save(tmp_path / "c.json"))
    assert back.thresholds.box_threshold == 0.35 and decision_threshold(back) == 0.35


def test_every_config_field_has_a_flag() -> None:
    flag_fields = {options.FLAG_FIELDS.get(name, name) for name, _, _ in options.PIPELINE_FLAGS}
    flag_fields -= set(options.CLI_ONLY_FLAGS)
    missing = sorted(set(PipelineConfig.model_fields) - flag_fields)
    assert missing == [], f"config fields without a CLI flag: {missing}"
    assert not flag_fields - set(PipelineConfig.model_fields), "a flag names no config field"


def test_new_flags_reach_the_config() -> None:
    flags = {name: default for name, _, default in options.PIPELINE_FLAGS}
    flags.update(feature_size=128, reference_stages="3,2", mask_percentile=99.0, nms_iou=0.3, zero_shot_keep=0.5)
    cfg = options.config_from_flag_dict(flags)
    assert (cfg.feature_size, cfg.reference_stages, cfg.mask_percentile, cfg.nms_iou, cfg.zero_shot_keep) == \
        (128, [3, 2], 99.0, 0.3, 0.5)
    assert resolve(cfg).reference.stages == (2, 3)
    with pytest.raises(SettingsError, match="comma-separated integers"):
        options.config_from_flag_dict({**flags, "reference_stages": "2;3"})


def test_batch_size_in_an_old_config_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "old.yaml"
    f.write_text("kind: texture\nbatch_size: 4\n")
    with pytest.raises(SettingsError, match=r"sets batch_size, which was removed: it was never read.*delete that line"):
        build_config(f)
    assert "batch_size" not in PipelineConfig.model_fields


def test_feature_size_has_one_default() -> None:
    """The presets are the source: resolve, ReferenceSettings' default and the CLI help all follow them."""
    for kind, preset in KIND_PRESETS.items():
        assert resolve(PipelineConfig(kind=kind)).reference.feature_size == preset.feature_size
        assert resolve(PipelineConfig(kind=kind, feature_size=96)).reference.feature_size == 96
    assert ReferenceSettings().feature_size == KIND_PRESETS["texture"].feature_size
    assert PipelineConfig().feature_size is None  # None = the preset, never a number of its own
    help_text = str(options.FeatureSizeOpt.__metadata__[0].help)
    assert all(f"{k} {p.feature_size}" in help_text for k, p in KIND_PRESETS.items())


def test_registry_profiles_take_settings_once() -> None:
    cfg = build_config(profile="offline", num_normal=2)
    assert {"offline", "paper", "fused"} <= set(profile_names())
    for name in ("offline", "paper", "fused"):
        runner = make_runner(name, build_config(profile=name, tagger="none", object_name="x"))
        assert isinstance(runner, Profile) and type(runner) is profile_class(name)
        assert isinstance(runner.settings, Settings) and runner.name == name
        assert list(inspect.signature(runner.fit).parameters) == ["normal"], name
    assert not hasattr(resolve(cfg), "config")  # no component can fall back to the raw config
    pipe = Pipeline(cfg)
    with pytest.raises(AttributeError):
        pipe.config = build_config(profile="offline", seed=1)  # type: ignore[misc]


class RecordingRunner:
    """A fake registry runner that remembers the config it was built with (as real runners keep Settings)."""

    built: list[PipelineConfig] = []

    def __init__(self, profile: str, config: PipelineConfig) -> None:
        self.name, self.config = "offline", config
        RecordingRunner.built.append(config)

    def fit(self, normal):  # noqa: ANN001, ANN201
        return Context(profile="offline", config=self.config, seed=self.config.seed,
                       normal_images=[im.path for im in normal])

    def predict(self, image, context):  # noqa: ANN001, ANN201
        from iapas.types import Prediction

        score = np.full(image.rgb.shape[:2], 0.1 * (context.seed - 110), np.float32)
        return Prediction(path=image.path, score_map=score, mask=score > 0.5, boxes=[],
                          image_score=float(score.max()), profile="offline")


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_harness_builds_a_runner_per_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each seed gets a runner holding its own config: no runner keeps the first category's settings."""
    from iapas.evaluation.harness import EvalOptions, run_evaluation

    RecordingRunner.built = []
    monkeypatch.setattr(iapas.pipeline, "make_runner", RecordingRunner)
    root = tmp_path / "mtd"
    make_mtd(root)
    run_evaluation("mtd", root, tmp_path / "out", PipelineConfig(profile="offline", num_normal=2),
                   EvalOptions(seeds=[111, 112], progress=False))
    assert sorted(c.seed for c in RecordingRunner.built) == [111, 112]
    for seed in (111, 112):  # each seed's Stage 1 ran under that seed's config
        ctx = Context.load(tmp_path / "out" / "contexts" / "mtd" / f"seed{seed}.json")
        assert ctx.seed == seed and ctx.config.seed == seed


def test_one_resume_rule() -> None:
    stamp = Stamp("abc", {"size": 3})
    assert matches({"settings_digest": "abc", "source": {"size": 3}}, stamp)
    assert not matches({"settings_digest": "abd", "source": {"size": 3}}, stamp)
    assert not matches({"settings_digest": "abc", "source": {"size": 4}}, stamp)
    assert matches({"settings_digest": "abc", "source": "whatever"}, Stamp("abc"))  # source not checked
    assert not matches(None, stamp) and not matches({"settings_digest": "abc"}, stamp, files=[Path("/nonexistent")])


@pytest.mark.slow  # over 0.5 s: out of the fast loop (`-m "not slow"`), run by CI
def test_run_reuses_stage1_by_the_same_rule_and_threads_do_not_matter(tmp_path: Path, monkeypatch) -> None:
    from fake_profile import MeanDiffProfile, use_mean_diff

    use_mean_diff(monkeypatch)
    (tmp_path / "normal").mkdir()
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 30 + i, np.uint8)).save(tmp_path / "normal" / f"n{i}.png")
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "imgs" / "t.png")
    app = command_app(run_cmd)
    args = ["run", "--normal", str(tmp_path / "normal"), "--images", str(tmp_path / "imgs"), "--out", str(tmp_path / "o"),
            "--profile", "offline"]
    first = CliRunner().invoke(app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.stderr
    stored = json.loads((tmp_path / "o" / "context.json").read_text())["resume"]
    MeanDiffProfile.predictions = 0
    again = CliRunner().invoke(app, [*args, "--threads", "1"], catch_exceptions=False)
    assert "reusing Stage 1" in again.stderr and MeanDiffProfile.predictions == 0
    other = CliRunner().invoke(app, [*args, "--seed", "5"], catch_exceptions=False)
    assert "reusing Stage 1" not in other.stderr
    assert json.loads((tmp_path / "o" / "context.json").read_text())["resume"] != stored


def test_context_calibration_without_its_percentile_is_a_clear_error(tmp_path: Path) -> None:
    ref = {k: v for k, v in OLD_OFFLINE["reference"].items() if k != "mask_percentile"}  # a bad hand edit
    with pytest.raises(SettingsError, match=r"(?s)malformed.*calibration\.percentile"):
        Context.load(_old_context(tmp_path, reference=ref))


def test_fine_stages_flag_overrides_the_preset_and_none_turns_it_off() -> None:
    from iapas.cli.options import config_from_flag_dict
    from iapas.settings import resolve

    on = config_from_flag_dict({"fine_stages": "3,2", "kind": "texture"})
    assert resolve(on).reference.fine_stages == (2, 3)
    off = config_from_flag_dict({"fine_stages": "none", "kind": "texture"})
    assert off.fine_stages == [] and resolve(off).reference.fine_stages == ()
    with pytest.raises(Exception, match="fine_stages must be backbone stages"):
        resolve(config_from_flag_dict({"fine_stages": "9", "kind": "texture"}))
