"""Zero-shot mode of the offline profile: a batch of test images and no normal image.

The context records the batch (every image it may be asked about) and the feature settings. The reference
pool (stages.mutual: up to 2 x references images spread over the batch) is embedded and mutually scored
once per context; the pool's maps calibrate every image (median over them of per-image percentiles:
defects are rare, so the median image is clean), so image scores compare across the batch. Each image
asked for is then scored against the pool alone, from the image the caller loaded: memory holds the
pool's features and one image, whatever the batch size, and no image of the batch is read twice.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from iapas.context import Context, Reference
from iapas.errors import InputError, SettingsError
from iapas.io.images import LoadedImage, load_image
from iapas.models.backbone import load_backbone
from iapas.models.device import resolve_device
from iapas.profiles.base import BatchRunner
from iapas.profiles.decisions import prediction_from_map, thresholds_of
from iapas.settings import (
    FLOOR_PERCENTILE, MASK_PLATEAU, MASK_RELATIVE, USER_VERDICT_MARK, VERDICT_SPREAD_ZERO_SHOT, Calibration,
    ReferenceSettings, Settings,
    floor_percentile_for,
)
from iapas.stages.calibration import BATCH_QUANTILE, Decision, calibrate, calibrated, decision_from_maxima, excess_ratio
from iapas.stages.calibration import Calibration as MapCalibration
from iapas.stages.mutual import MutualSettings, nearest_distances, reference_pool, score_image
from iapas.stages.position import Alignment, decide, nearest_position_distance, unaligned
from iapas.stages.reference import common_size, embed, finish_map, prepare, prepare_at
from iapas.stages.regions import DESCRIPTION_NOTE
from iapas.types import Prediction

MODE = "zero-shot"
ZERO_SHOT_NOTE = "zero-shot: scored against the other images of its batch (mutual scoring), no normal images"
MIN_BATCH = 2


def image_key(path: str | Path) -> str:
    """The batch's key of an image: its resolved absolute path."""
    return str(Path(path).expanduser().resolve())


@dataclass
class _Batch:
    """What a zero-shot context says about its batch, read once per context."""

    images: list[str]  # image keys, in batch order
    settings: ReferenceSettings
    mutual: MutualSettings
    percentile: float
    floor_percentile: float
    backbone: Any = None  # models.backbone.LiteFeatures, loaded with the pool

    @classmethod
    def of(cls, context: Context) -> "_Batch":
        """The batch of a zero-shot context.

        Raises:
            SettingsError: the context lacks the zero-shot records.
        """
        ref = context.reference
        if ref.settings is None or ref.mutual is None or ref.calibration is None:
            raise SettingsError("the zero-shot context lacks reference.settings, .mutual or .mask_percentile; "
                                "rerun without --normal to rebuild it")
        mutual = MutualSettings(references=ref.mutual.references, keep_fraction=ref.mutual.keep_fraction,
                                chunk=ref.mutual.chunk, seed=context.seed)
        return cls(images=[str(p) for p in ref.batch or []], settings=ref.settings, mutual=mutual,
                   percentile=ref.calibration.percentile, floor_percentile=ref.calibration.floor_percentile)


@dataclass
class _Pool:
    """The reference pool of one context: features, alignment and the batch's calibration."""

    features: dict[int, Any]  # batch index -> ((h*w, C) patch features, (h, w) grid)
    alignment: Alignment
    calibration: MapCalibration
    decision: Decision
    refs: dict[int, Any]  # batch index -> (h*w, C) patch features: what each image is scored against


class ZeroShotRunner(BatchRunner):
    """The offline profile's batch mode: each image of a batch scored against the batch's reference pool.

    Args:
        settings: the run's resolved settings (features, mutual scoring, percentile, kind, target).
        profile: the name written into the context.
    """

    def __init__(self, settings: Settings, profile: str) -> None:
        super().__init__(settings, profile)
        self._batch: tuple[Context, _Batch, dict[str, int]] | None = None  # the batch (and key -> index) last asked about
        self._pool: tuple[Context, _Pool] | None = None  # the pool of the context last asked about
        self._loaded: dict[str, LoadedImage] = {}  # pool images loaded by Stage 1, used once by the pool

    @staticmethod
    def handles(context: Context) -> bool:
        """Whether `context` is a batch context of this runner (the offline profile's zero-shot mode)."""
        return context.reference.mode == MODE

    def pool_indices(self, batch_size: int) -> list[int]:
        """Indices of the batch's reference pool (stages.mutual.reference_pool)."""
        return reference_pool(batch_size, self.settings.mutual.references)

    def fit(self, batch: list[Path], loaded: dict[int, LoadedImage] | None = None) -> Context:
        """The context of a zero-shot run over `batch` (no bank; the batch is the reference).

        Args:
            batch: every image the context may be asked about.
            loaded: batch index -> image already loaded by the caller; the pool's images among them are not
                read again.

        Returns:
            The context (its thresholds are set when the pool is first scored).
        """
        settings = self.settings
        if len(batch) < MIN_BATCH:
            raise SettingsError(f"zero-shot mode scores images against each other: give at least {MIN_BATCH} images "
                                "(10 or more work best), or normal images with --normal")
        mutual = settings.mutual
        keys = [image_key(p) for p in batch]
        pool = set(self.pool_indices(len(batch)))
        self._loaded = {keys[i]: im for i, im in (loaded or {}).items() if i in pool}
        ctx = Context(
            profile=self.profile, config=settings.record, normal_images=[], seed=settings.seed,
            reference=Reference(
                mode=MODE,
                settings=settings.reference,
                mutual=mutual,
                batch=keys,
                calibration=Calibration(percentile=settings.mask_percentile, floor_percentile=FLOOR_PERCENTILE,
                                        method="per chunk of the batch: median over its images of per-image percentiles"),
                score_mapping="score = e / (e + t - f), e = max(d - f, 0), d = mean of the closest "
                              f"{mutual.keep_fraction:g} of nearest-patch distances to up to {mutual.references} "
                              "other images of the batch",
            ),
            models={"backbone": {"id": settings.reference.backbone, "revision": "pypi"}},
        )
        if len(batch) < 10:
            ctx.warnings.append(f"zero-shot mode with only {len(batch)} images: mutual scoring needs a batch in which "
                                "most images are defect-free; 10 or more work best")
        return ctx

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        """Stage 2 on one image of the context's batch, scored against the batch's reference pool.

        Args:
            image: the image, as the caller loaded it (its pixels are not read again).
            context: the batch's zero-shot context.

        Returns:
            The prediction: (H, W) float32 calibrated map, verdict-following mask and regions.

        Raises:
            InputError: the image is not part of the context's batch.
        """
        batch, index = self._batch_of(context)
        i = index.get(image_key(image.path))
        if i is None:
            raise InputError(image.path, "not part of this zero-shot batch (zero-shot contexts score only the images "
                                         "they were made for)")
        pool = self._pool_of(context, batch)
        settings = batch.settings
        feats = pool.features[i] if i in pool.features else _features(batch.backbone, image.rgb, settings, pool.alignment)
        raw = finish_map(score_image(i, feats, pool.refs, batch.mutual, _positions(settings, pool.alignment)), image.rgb,
                         settings)
        score = calibrated(raw, pool.calibration.threshold, pool.calibration.floor, settings.floor_trace)
        notes = [ZERO_SHOT_NOTE, DESCRIPTION_NOTE] + (
            ["position-aware: " + pool.alignment.rule] if pool.alignment.aligned else [])
        return prediction_from_map(image.path, score, self.profile, notes, pool.decision, rgb=image.rgb)

    def _batch_of(self, context: Context) -> tuple[_Batch, dict[str, int]]:
        """The batch of `context` and its image key -> batch index, read once per context."""
        if self._batch is None or self._batch[0] is not context:
            batch = _Batch.of(context)
            self._batch = (context, batch, {p: i for i, p in enumerate(batch.images)})
        return self._batch[1], self._batch[2]

    def _pool_of(self, context: Context, batch: _Batch) -> _Pool:
        """The pool of `context`, built on first use (its calibration goes into context.thresholds)."""
        if self._pool is not None and self._pool[0] is context:
            return self._pool[1]
        batch.backbone = load_backbone(batch.settings.backbone, resolve_device(self.settings.device))
        images = self._pool_images(batch)
        pool = build_pool(images, batch, self.settings.kind, self.settings.target_frr)
        given = context.thresholds
        if given is not None and given.verdict is not None and given.verdict_rule and USER_VERDICT_MARK in given.verdict_rule:
            pool.decision = replace(pool.decision, verdict=given.verdict, rule=given.verdict_rule)  # the user's wins
        context.thresholds = thresholds_of(pool.decision)
        if batch.settings.position != "off":
            context.reference.alignment = pool.alignment.to_json()
        self._pool = (context, pool)
        return pool

    def _pool_images(self, batch: _Batch) -> dict[int, LoadedImage]:
        """The pool's readable images: those Stage 1 loaded, the others read now (unreadable ones left out)."""
        images: dict[int, LoadedImage] = {}
        for j in reference_pool(len(batch.images), batch.mutual.references):
            key = batch.images[j]
            try:
                images[j] = self._loaded.pop(key) if key in self._loaded else load_image(key)
            except InputError:
                continue
        self._loaded = {}
        if len(images) < MIN_BATCH:
            raise SettingsError("zero-shot mode: fewer than 2 readable images in the batch's reference pool")
        return images


def _features(backbone: Any, rgb: np.ndarray, settings: ReferenceSettings, alignment: Alignment) -> Any:
    """((h*w, C) patch features, (h, w) grid) of an (H, W, 3) uint8 image, at the pool's common size when aligned."""
    if alignment.aligned:
        return embed(backbone, prepare_at(rgb, alignment.size), settings)  # type: ignore[arg-type]
    return embed(backbone, prepare(rgb, settings), settings)


def _positions(settings: ReferenceSettings, alignment: Alignment) -> tuple[int, str] | None:
    """(window, combine) of the same-position comparison when the batch is aligned, else None."""
    return (settings.position_window, settings.position_combine) if alignment.aligned else None


def align_pool(images: dict[int, LoadedImage], batch: _Batch) -> tuple[Alignment, dict[int, Any] | None]:
    """Whether the pool's images are aligned (stages.position), and their features when they are.

    Each pool image's patches are matched against the other pool images, anywhere and within their window.

    Args:
        images: batch index -> loaded pool image.
        batch: the batch's settings and backbone.

    Returns:
        (the decision, batch index -> features at the common size, or None when not aligned).
    """
    import torch  # heavy: loaded when a batch is scored, so registering the profile stays light

    s = batch.settings
    size = common_size([im.rgb for im in images.values()], s)
    feats = {j: embed(batch.backbone, prepare_at(im.rgb, size), s) for j, im in images.items()}
    grid = next(iter(feats.values()))[1]
    keys = sorted(feats)
    stacked = torch.stack([feats[j][0].reshape(*grid, -1) for j in keys])
    anywhere, positions = [], []
    for n, j in enumerate(keys):
        others = torch.cat([stacked[:n], stacked[n + 1:]])
        positions.append(nearest_position_distance(stacked[n], others, s.position_window).numpy())
        anywhere.append(nearest_distances(feats[j][0], others.reshape(-1, others.shape[-1])).reshape(*grid).numpy())
    alignment = decide(anywhere, positions, s.position_ratio, s.position, tuple(grid), size)
    return alignment, (feats if alignment.aligned else None)


def ok_pixel_level(maxima: list[float], highs: tuple[float, ...], first: Any, threshold: float, floor: float) -> float | None:
    """Median high percentile (raw) of the pool images whose maximum is under the verdict of `first`: the pixel
    level of the parts judged ok, where the mask threshold starts (the batch's own calibration is defect-dominated
    when most parts are defective). None when no pool image is judged ok.

    Args:
        maxima: (N,) raw map maximum of each pool image.
        highs: (N,) raw high percentile of each pool image.
        first: the stages.calibration.Decision made with the batch's calibration.
        threshold: the batch calibration's raw threshold.
        floor: the batch calibration's raw floor.

    Returns:
        The median high percentile of the ok-judged pool images, or None.
    """
    verdict_raw = floor + (threshold - floor) * float(excess_ratio(first.verdict))
    below = [h for m, h in zip(maxima, highs) if m < verdict_raw]
    return float(np.median(below)) if below else None


def build_pool(images: dict[int, LoadedImage], batch: _Batch, kind: str, target_frr: float) -> _Pool:
    """Embed the reference pool and calibrate on its mutually scored maps.

    Args:
        images: batch index -> loaded pool image (at least two).
        batch: the batch's settings and backbone.
        kind: object or texture (the verdict's spread).
        target_frr: false-reject rate the verdict aims at.

    Returns:
        The pool: features, alignment, map calibration and verdict decision.
    """
    alignment, feats = unaligned("not measured yet"), None
    if batch.settings.position != "off":
        alignment, feats = align_pool(images, batch)
    if feats is None:
        feats = {j: _features(batch.backbone, im.rgb, batch.settings, alignment) for j, im in images.items()}
    refs = {j: f[0] for j, f in feats.items()}
    maps = [finish_map(score_image(j, feats[j], refs, batch.mutual, _positions(batch.settings, alignment)), im.rgb,
                       batch.settings) for j, im in images.items()]
    cal = calibrate(maps, batch.percentile, floor_percentile_for(batch.percentile, batch.floor_percentile))
    maxima = [float(m.max()) for m in maps]

    def decide_at(mask_base: float | None = None) -> Decision:
        """The batch's decision, with the mask threshold starting from `mask_base` when given."""
        return decision_from_maxima(maxima, cal.threshold, cal.floor, VERDICT_SPREAD_ZERO_SHOT[kind], target_frr,
                                    "images of the batch's reference pool (mutual scoring)", quantile=BATCH_QUANTILE,
                                    plateau=MASK_PLATEAU[kind], mask_base=mask_base, relative=MASK_RELATIVE[kind])

    decision = decide_at(ok_pixel_level(maxima, cal.image_thresholds, decide_at(), cal.threshold, cal.floor))
    return _Pool(features=feats, alignment=alignment, calibration=cal, decision=decision, refs=refs)
