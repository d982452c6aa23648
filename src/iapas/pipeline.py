"""The Python API that the CLI is a thin layer over.

    pipe = Pipeline(build_config(profile="offline"))
    ctx = pipe.fit("good/")                  # Stage 1 -> Context (save with ctx.save(...))
    pred = pipe.predict_one("to_check/a.png", ctx)
    again = Pipeline.from_context(ctx)       # the pipeline a saved context was made with
"""
from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.errors import InputError, SettingsError
from iapas.io.images import LoadedImage, load_image
from iapas.io.listing import list_inputs
from iapas.io.resume import Stamp, matches
from iapas.models.resolve import paper_weights_available
from iapas.profiles.base import BatchRunner, Profile
from iapas.profiles.registry import batch_profiles as batch_profile_names
from iapas.profiles.registry import check_profile, profile_class
from iapas.settings import resolve
from iapas.stages.kind import MAX_IMAGES, choose_kind
from iapas.threads import apply_threads
from iapas.types import Prediction

# the profile a config without one gets: the paper's method when its weights resolve here, else the one
# that needs no hub weights
AUTO_PROFILES = ("paper", "offline")


def sample_normal_paths(paths: list[Path], r: int, seed: int) -> list[Path]:
    """Pick r normal images at random with a fixed seed (paper: r = 10, seed 111); all if fewer.

    Args:
        paths: the normal images found.
        r: how many to pick.
        seed: the sampling seed.

    Returns:
        The picked paths, sorted.
    """
    ordered = sorted(paths, key=lambda p: str(p))
    if not ordered:
        raise SettingsError("the normal folder holds no images (.png, .jpg, .bmp, .tif, ...)")
    if r >= len(ordered):
        return ordered
    rng = random.Random(seed)
    return sorted(rng.sample(ordered, r), key=lambda p: str(p))


def reuse_or_make(ctx_file: Path, stamp: Stamp, make: Callable[[], Context]) -> tuple[Context, bool]:
    """The context saved at `ctx_file` when its stamp equals `stamp` (io.resume.matches, the one resume
    rule), else `make()` stamped and saved there. Used by `run` (few-shot and zero-shot) and by the
    evaluation harness.

    Args:
        ctx_file: where the context is kept.
        stamp: settings digest and input fingerprint of this run.
        make: builds a new context.

    Returns:
        (context, whether it was reused).
    """
    if ctx_file.is_file():
        try:
            old = Context.load(ctx_file)
            if matches(old.resume, stamp):
                return old, True
        except SettingsError:
            pass  # unreadable or edited into an invalid state: make a new one
    context = make()
    context.resume = stamp.to_json()
    context.save(ctx_file)
    return context, False


def resolve_profile(config: PipelineConfig) -> str:
    """The profile to use: the configured one, else paper when its weights resolve, else offline."""
    return config.profile or auto_profile(config)[0]


def auto_profile(config: PipelineConfig) -> tuple[str, str]:
    """(profile, why) for a config without a profile: the paper's method when its weights resolve here,
    else the profile that needs no hub weights."""
    with_weights, without = AUTO_PROFILES
    if paper_weights_available(config):
        return with_weights, "hub weights found"
    return without, "no hub weights present"


def make_runner(profile: str, config: PipelineConfig) -> Profile:
    """The registered profile `profile`, given the settings resolved from `config` (once, here).

    Args:
        profile: a registered profile's name.
        config: the run's config.

    Returns:
        The profile, its models not loaded yet.

    Raises:
        SettingsError: no such profile, or the config does not suit it.
    """
    cls = profile_class(profile)
    cls.check_config(config)
    return cls(resolve(config))


class Pipeline:
    """Build from a config, fit Stage 1 on normal images, predict Stage 2 on images.

    A pipeline's config is fixed: for other settings build another Pipeline (loaded models are shared
    through the model caches, so that costs no reload).

    Args:
        config: every setting (`build_config`).
        runner: a ready profile to use instead of the registered one.
    """

    def __init__(self, config: PipelineConfig, runner: Profile | None = None) -> None:
        if runner is None:
            check_profile(config)
        self._config = config
        auto = auto_profile(config) if runner is None and not config.profile else None
        self.profile = runner.name if runner is not None else config.profile or auto[0]  # type: ignore[index]
        self.auto_reason: str | None = auto[1] if auto else None  # why the profile was chosen, when it was
        self._runner: Profile | None = runner
        self._batch: BatchRunner | None = None
        self._injected = runner is not None
        self.kind_choice: Any = None  # stages.kind.KindChoice when the kind was chosen from the images

    @classmethod
    def from_context(cls, context: Context, **overrides: Any) -> "Pipeline":
        """The pipeline that made `context` (its recorded config and profile), with `overrides` applied.

        Args:
            context: a context made by any profile.
            overrides: config fields to change (None values are ignored), e.g. device or threads.

        Returns:
            A pipeline whose Stage 2 reads `context` as its own.
        """
        update = {"profile": context.profile, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(context.config.model_copy(update=update))

    @property
    def config(self) -> PipelineConfig:
        """The settings this pipeline and its runner were built with (read-only: no runner keeps a stale one)."""
        return self._config

    @property
    def resolved_config(self) -> PipelineConfig:
        """The config with the profile chosen (workers of another process must not choose it again)."""
        return self._config.model_copy(update={"profile": self.profile})

    @property
    def profile_class(self) -> type[Profile]:
        """The class of this pipeline's profile (what it loads, its thresholds, its batch mode)."""
        return type(self._runner) if self._injected else profile_class(self.profile)  # type: ignore[return-value]

    @property
    def runner(self) -> Profile:
        """The profile, built on first use with the settings resolved from the config."""
        if self._runner is None:
            apply_threads(self.config.threads)  # before any model loads: one budget for every native pool
            self._runner = make_runner(self.profile, self.config)
        return self._runner

    @property
    def batch_runner(self) -> BatchRunner:
        """The profile's batch (zero-shot) mode, built on first use.

        Raises:
            SettingsError: the profile has no batch mode.
        """
        if self._batch is None:
            batch = getattr(self.profile_class, "batch_runner", None)
            if batch is None:
                raise SettingsError(f"zero-shot mode (no --normal) needs a profile with a batch mode "
                                    f"({', '.join(batch_profile_names())}), not {self.profile}")
            apply_threads(self.config.threads)
            self._batch = batch(resolve(self.config), self.profile)
        return self._batch

    def select_normal(self, normal: str | Path | list[str | Path]) -> list[Path]:
        """The r normal images Stage 1 uses: folders are scanned without mask-like files (x.png beside x.jpg,
        *_mask, *_label, *_GT); files named explicitly are kept as given."""
        items = normal if isinstance(normal, list) else [normal]
        return sample_normal_paths(list_inputs(items, skip_masks=True).paths, self.config.num_normal, self.config.seed)

    def choose_kind(self, rgbs: list[Any]) -> None:
        """Without a kind in the config, decide object or texture from these images (stages.kind) and build
        the runner with it; the choice and its evidence go into the context (`kind_choice`).

        Args:
            rgbs: (H, W, 3) uint8 images.
        """
        if self._config.kind is not None or self._injected or not rgbs:
            return
        from iapas.models.backbone import load_backbone  # torch: loaded only when a kind is chosen
        from iapas.models.device import resolve_device

        apply_threads(self._config.threads)
        self.kind_choice = choose_kind(rgbs, load_backbone(self._config.backbone, resolve_device(self._config.device)))
        self._config = self._config.model_copy(update={"kind": self.kind_choice.kind})
        self._runner = None
        self._batch = None

    def _record_kind(self, context: Context) -> Context:
        if self.kind_choice is not None:
            context.kind_choice = self.kind_choice.to_json()
        return context

    def fit(self, normal: str | Path | list[str | Path]) -> Context:
        """Stage 1: sample r normal images with the seed, load them, build the context."""
        chosen = self.select_normal(normal)
        images: list[LoadedImage] = []
        problems: list[str] = []
        for p in chosen:
            try:
                images.append(load_image(p))
            except InputError as exc:
                problems.append(str(exc))
        if not images:
            raise SettingsError("no usable normal image: " + "; ".join(problems))
        self.choose_kind([im.rgb for im in images])
        context = self._record_kind(self.runner.fit(images))
        context.warnings.extend(f"normal image skipped: {p}" for p in problems)
        return context

    def fit_zero_shot(self, images: list[str | Path]) -> Context:
        """Zero-shot mode (no normal images): a context under which the images score each other.

        The images the kind choice and the batch's reference pool need are loaded once, here.

        Args:
            images: the batch, every image the context may be asked about.

        Raises:
            SettingsError: the profile has no batch mode, or the batch is too small.
        """
        paths = [Path(p) for p in images]
        needed = set(self.batch_runner.pool_indices(len(paths)))  # refuses a profile without a batch mode first
        kind_picks: list[int] = []
        if self._config.kind is None and not self._injected:
            kind_picks = sorted({int(round(v)) for v in np.linspace(0, len(paths) - 1, min(MAX_IMAGES, len(paths)))})
        loaded = _load_some(paths, needed | set(kind_picks))
        self.choose_kind([loaded[i].rgb for i in kind_picks if i in loaded])
        return self._record_kind(self.batch_runner.fit(paths, loaded))

    def predict_one(self, image: str | Path | LoadedImage, context: Context) -> Prediction:
        """Stage 2 on one image under `context` (a batch context goes to the profile's batch mode).

        Args:
            image: a path, or an image already loaded (`io.images.load_image`).
            context: the context Stage 1 made (or loaded from context.json).

        Returns:
            The prediction: (H, W) float32 score map, (H, W) bool mask, regions, image score.
        """
        loaded = image if isinstance(image, LoadedImage) else load_image(image)
        batch = getattr(self.profile_class, "batch_runner", None)
        if batch is not None and batch.handles(context):
            pred = self.batch_runner.predict(loaded, context)
        else:
            pred = self.runner.predict(loaded, context)
        if loaded.note:
            pred.notes.append(loaded.note)
        return pred


def _load_some(paths: list[Path], indices: set[int]) -> dict[int, LoadedImage]:
    """index -> loaded image for the readable ones among `indices` (unreadable images are left out)."""
    loaded: dict[int, LoadedImage] = {}
    for i in sorted(indices):
        try:
            loaded[i] = load_image(paths[i])
        except InputError:
            continue
    return loaded
