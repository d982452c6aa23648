"""The Python API that the CLI is a thin layer over.

    pipe = Pipeline(build_config(profile="offline"))
    ctx = pipe.fit("good/")                  # Stage 1 -> Context (save with ctx.save(...))
    pred = pipe.predict_one("to_check/a.png", ctx)
    for item in pipe.predict_many(paths, ctx): ...   # (path, Prediction | InputError)
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from iapas.config import PipelineConfig
from iapas.context import Context
from iapas.errors import InputError, SettingsError
from iapas.io.images import LoadedImage, load_image
from iapas.io.resume import Stamp, matches
from iapas.profiles.base import ProfileRunner
from iapas.settings import resolve
from iapas.types import Prediction


def sample_normal_paths(paths: list[Path], r: int, seed: int) -> list[Path]:
    """Pick r normal images at random with a fixed seed (paper: r = 10, seed 111); all if fewer."""
    ordered = sorted(paths, key=lambda p: str(p))
    if not ordered:
        raise SettingsError("the normal folder holds no images (.png, .jpg, .bmp, .tif, ...)")
    if r >= len(ordered):
        return ordered
    rng = random.Random(seed)
    return sorted(rng.sample(ordered, r), key=lambda p: str(p))


def reuse_or_make(ctx_file: Path, stamp: Stamp, make: Callable[[], Context]) -> tuple[Context, bool]:
    """The context saved at `ctx_file` when its stamp equals `stamp` (io.resume.matches, the one resume
    rule), else `make()` stamped and saved there. Returns (context, reused). Used by `run` (few-shot and
    zero-shot) and by the evaluation harness."""
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
    if config.profile:
        return config.profile
    from iapas.models.resolve import paper_weights_available

    return "paper" if paper_weights_available(config) else "offline"


# The profile registry: name -> "module:Class" of its ProfileRunner. A new profile is one module under
# profiles/ plus one line here (imported only when chosen, so no profile's heavy imports leak into others).
PROFILE_RUNNERS: dict[str, str] = {
    "offline": "iapas.profiles.offline:OfflineProfile",
    "paper": "iapas.profiles.paper:PaperProfile",
    "fused": "iapas.profiles.fused:FusedProfile",
}


def make_runner(profile: str, config: PipelineConfig) -> ProfileRunner:
    """The registered runner of `profile`, given the settings resolved from `config` (once, here)."""
    import importlib

    spec = PROFILE_RUNNERS.get(profile)
    if spec is None:
        raise SettingsError(f"unknown profile {profile!r}; allowed: {', '.join(sorted(PROFILE_RUNNERS))}")
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)(resolve(config))


class Pipeline:
    """Build from a config, fit Stage 1 on normal images, predict Stage 2 on images.

    A pipeline's config is fixed: for other settings build another Pipeline (loaded models are shared
    through the model caches, so that costs no reload).

    Args:
        config: every setting (`build_config`).
        runner: a ready ProfileRunner to use instead of the registered one (tests inject fakes here).
    """

    def __init__(self, config: PipelineConfig, runner: ProfileRunner | None = None) -> None:
        self._config = config
        self.profile = runner.name if runner is not None else resolve_profile(config)
        self._runner: ProfileRunner | None = runner
        self._injected = runner is not None
        self.kind_choice: Any = None  # stages.kind.KindChoice when the kind was chosen from the images

    @property
    def config(self) -> PipelineConfig:
        """The settings this pipeline and its runner were built with (read-only: no runner keeps a stale one)."""
        return self._config

    @property
    def runner(self) -> ProfileRunner:
        if self._runner is None:
            from iapas.threads import apply_threads

            apply_threads(self.config.threads)  # before any model loads: one budget for every native pool
            self._runner = make_runner(self.profile, self.config)
        return self._runner

    def select_normal(self, normal: str | Path | list[str | Path]) -> list[Path]:
        """The r normal images Stage 1 uses: folders are scanned without mask-like files (x.png beside x.jpg,
        *_mask, *_label, *_GT); files named explicitly are kept as given."""
        from iapas.io.listing import list_inputs

        items = normal if isinstance(normal, list) else [normal]
        return sample_normal_paths(list_inputs(items, skip_masks=True).paths, self.config.num_normal, self.config.seed)

    def choose_kind(self, rgbs: list[Any]) -> None:
        """Without a kind in the config, decide object or texture from these images (stages.kind) and build
        the runner with it; the choice and its evidence go into the context (`kind_choice`)."""
        if self._config.kind is not None or self._injected or not rgbs:
            return
        from iapas.models.backbone import load_backbone
        from iapas.models.device import resolve_device
        from iapas.stages.kind import choose_kind
        from iapas.threads import apply_threads

        apply_threads(self._config.threads)
        self.kind_choice = choose_kind(rgbs, load_backbone(self._config.backbone, resolve_device(self._config.device)))
        self._config = self._config.model_copy(update={"kind": self.kind_choice.kind})
        self._runner = None

    def _record_kind(self, context: Context) -> Context:
        if self.kind_choice is not None:
            setattr(context, "kind_choice", self.kind_choice.to_json())
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

        Only the offline profile has this mode (mutual scoring, stages.mutual).
        """
        if not hasattr(self.runner, "fit_zero_shot"):
            raise SettingsError(f"zero-shot mode (no --normal) needs the offline profile, not {self.profile}")
        if self._config.kind is None and not self._injected:
            from iapas.stages.kind import MAX_IMAGES

            picks = sorted({int(round(v)) for v in np.linspace(0, len(images) - 1, min(MAX_IMAGES, len(images)))})
            rgbs = []
            for i in picks:
                try:
                    rgbs.append(load_image(images[i]).rgb)
                except InputError:
                    continue
            self.choose_kind(rgbs)
        return self._record_kind(self.runner.fit_zero_shot([Path(p) for p in images]))  # type: ignore[attr-defined]

    def predict_one(self, image: str | Path | LoadedImage, context: Context) -> Prediction:
        loaded = image if isinstance(image, LoadedImage) else load_image(image)
        pred = self.runner.predict(loaded, context)
        if loaded.note:
            pred.notes.append(loaded.note)
        return pred

    def predict_many(
        self, paths: list[str | Path], context: Context
    ) -> Iterator[tuple[Path, Prediction | InputError]]:
        """Yield each path with its prediction or the InputError that stopped it; never stops early."""
        for p in paths:
            try:
                yield Path(p), self.predict_one(p, context)
            except InputError as exc:
                yield Path(p), exc
