"""Zero-shot mode of the offline profile: a batch of test images and no normal image.

The context records the batch (every image it may be asked about) and the feature settings. On first
use the reference pool (stages.mutual: up to 2 x references images spread over the batch) is embedded
and mutually scored; the pool's maps calibrate every image (median over them of per-image
percentiles: defects are rare, so the median image is clean), so image scores compare across the
batch. An image asked for is then scored with its whole chunk of consecutive images, whose
predictions are kept until an image of another chunk is asked for: memory holds the pool's features
and one chunk, whatever the batch size.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from iapas.context import Context, Reference
from iapas.errors import InputError, SettingsError
from iapas.io.images import LoadedImage, load_image
from iapas.stages.calibration import BATCH_QUANTILE, calibrate, calibrated, decision_from_maxima
from iapas.settings import FLOOR_PERCENTILE, MASK_PLATEAU, MASK_RELATIVE, VERDICT_SPREAD_ZERO_SHOT, Calibration, Settings, floor_percentile_for, kind_of
from iapas.stages.mutual import MutualSettings, chunks, reference_pool, score_image
from iapas.stages.position import Alignment, unaligned
from iapas.stages.reference import common_size, embed, finish_map, prepare, prepare_at
from iapas.types import Prediction

MODE = "zero-shot"
ZERO_SHOT_NOTE = "zero-shot: scored against the other images of its batch (mutual scoring), no normal images"
MIN_BATCH = 2


def image_key(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def zero_shot_context(profile: str, batch: list[Path], settings: Settings) -> Context:
    """The context of a zero-shot run over `batch` (no bank; the batch is the reference)."""
    if len(batch) < MIN_BATCH:
        raise SettingsError(f"zero-shot mode scores images against each other: give at least {MIN_BATCH} images "
                            "(10 or more work best), or normal images with --normal")
    mutual = settings.mutual
    ctx = Context(
        profile=profile, config=settings.config, normal_images=[], seed=settings.seed,
        reference=Reference(
            mode=MODE,
            settings=settings.reference,
            mutual=mutual,
            batch=[image_key(p) for p in batch],
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


def ok_pixel_level(maxima: list[float], highs: tuple[float, ...], first: Any, threshold: float, floor: float) -> float | None:
    """Median high percentile (raw) of the pool images whose maximum is under the verdict of `first`: the pixel
    level of the parts judged ok, where the mask threshold starts (the batch's own calibration is defect-dominated
    when most parts are defective). None when no pool image is judged ok.

    Args:
        maxima, highs: raw map maximum and high percentile of each pool image.
        first: the stages.calibration.Decision made with the batch's calibration (`threshold`, `floor`).
    """
    from iapas.stages.calibration import excess_ratio

    verdict_raw = floor + (threshold - floor) * float(excess_ratio(first.verdict))
    below = [h for m, h in zip(maxima, highs) if m < verdict_raw]
    return float(np.median(below)) if below else None


class ZeroShotBatch:
    """Predictions of one zero-shot context, computed a chunk at a time."""

    def __init__(self, context: Context, backbone: Callable[[str], Any]) -> None:
        ref = context.reference
        if ref.settings is None or ref.mutual is None or ref.calibration is None:
            raise SettingsError("the zero-shot context lacks reference.settings, .mutual or .mask_percentile; "
                                "rerun without --normal to rebuild it")
        self.context = context
        self.settings = ref.settings
        self.mutual = MutualSettings(references=ref.mutual.references, keep_fraction=ref.mutual.keep_fraction,
                                     chunk=ref.mutual.chunk, seed=context.seed)
        self.batch: list[str] = [str(p) for p in ref.get("batch", [])]
        self.index = {p: i for i, p in enumerate(self.batch)}
        self.parts = chunks(len(self.batch), self.mutual.chunk)
        self.percentile = ref.calibration.percentile
        self.floor_percentile = ref.calibration.floor_percentile
        self.backbone = backbone(self.settings.backbone)
        self._done: dict[int, Prediction | InputError] = {}
        self._part: int | None = None
        self._pool: dict[int, Any] | None = None  # index -> (patch features, grid) of the reference pool
        self._calibration: Any = None  # stages.calibration.Calibration from the pool's maps
        self._decision: Any = None  # stages.calibration.Decision from the pool's map maxima
        self.alignment: Alignment = unaligned("not measured yet")

    def serves(self, context: Context) -> bool:
        return context is self.context

    def predict(self, image: LoadedImage) -> Prediction:
        key = image_key(image.path)
        if key not in self.index:
            raise InputError(image.path, "not part of this zero-shot batch (zero-shot contexts score only the images "
                                         "they were made for)")
        i = self.index[key]
        if self._pool is None:
            self._build_pool()
        part = next(k for k, r in enumerate(self.parts) if i in r)
        if part != self._part:
            self._run_part(part, given={i: image})
        out = self._done[i]
        if isinstance(out, InputError):
            raise out
        return out

    def _features(self, rgb: np.ndarray) -> Any:
        if self.alignment.aligned:
            return embed(self.backbone, prepare_at(rgb, self.alignment.size), self.settings)  # type: ignore[arg-type]
        return embed(self.backbone, prepare(rgb, self.settings), self.settings)

    def _positions(self) -> tuple[int, str] | None:
        return (self.settings.position_window, self.settings.position_combine) if self.alignment.aligned else None

    def _align(self, images: dict[int, LoadedImage]) -> None:
        """Decide on the pool whether its images are aligned (stages.position) and record it in the context.

        Each pool image's patches are matched against the other pool images, anywhere and within their
        window; the pool's features are then those of the mode chosen.
        """
        import torch

        from iapas.stages.mutual import nearest_distances
        from iapas.stages.position import decide, nearest_position_distance

        s = self.settings
        rgbs = [im.rgb for im in images.values()]
        size = common_size(rgbs, s)
        feats = {j: embed(self.backbone, prepare_at(im.rgb, size), s) for j, im in images.items()}
        grid = next(iter(feats.values()))[1]
        keys = sorted(feats)
        stacked = torch.stack([feats[j][0].reshape(*grid, -1) for j in keys])
        anywhere, positions = [], []
        for n, j in enumerate(keys):
            others = torch.cat([stacked[:n], stacked[n + 1:]])
            positions.append(nearest_position_distance(stacked[n], others, s.position_window).numpy())
            anywhere.append(nearest_distances(feats[j][0], others.reshape(-1, others.shape[-1])).reshape(*grid).numpy())
        self.alignment = decide(anywhere, positions, s.position_ratio, s.position, tuple(grid), size)
        self.context.reference.__setattr__("alignment", self.alignment.to_json())
        if self.alignment.aligned:
            self._pool = feats

    def _build_pool(self) -> None:
        """Embed the reference pool (unreadable images are left out) and calibrate on its maps."""
        images: dict[int, LoadedImage] = {}
        for j in reference_pool(len(self.batch), self.mutual.references):
            try:
                images[j] = load_image(self.batch[j])
            except InputError:
                continue
        if len(images) < MIN_BATCH:
            raise SettingsError("zero-shot mode: fewer than 2 readable images in the batch's reference pool")
        self._pool = None
        if self.settings.position != "off":
            self._align(images)
        if self._pool is None:
            self._pool = {j: self._features(im.rgb) for j, im in images.items()}
        refs = {j: f[0] for j, f in self._pool.items()}
        maps = [finish_map(score_image(j, self._pool[j], refs, self.mutual, self._positions()), im.rgb, self.settings)
                for j, im in images.items()]
        self._calibration = calibrate(maps, self.percentile, floor_percentile_for(self.percentile, self.floor_percentile))
        config = self.context.config
        maxima = [float(m.max()) for m in maps]
        cal = self._calibration

        def decision(mask_base: float | None = None) -> Any:
            return decision_from_maxima(maxima, cal.threshold, cal.floor, VERDICT_SPREAD_ZERO_SHOT[kind_of(config)],
                                        config.target_frr, "images of the batch's reference pool (mutual scoring)",
                                        quantile=BATCH_QUANTILE, plateau=MASK_PLATEAU[kind_of(config)], mask_base=mask_base,
                                        relative=MASK_RELATIVE[kind_of(config)])

        self._decision = decision(ok_pixel_level(maxima, cal.image_thresholds, decision(), cal.threshold, cal.floor))
        given = self.context.thresholds
        if given is not None and given.verdict is not None and given.verdict_rule and "--verdict-threshold" in given.verdict_rule:
            self._decision = replace(self._decision, verdict=given.verdict, rule=given.verdict_rule)  # the user's wins
        from iapas.profiles.offline import thresholds_of

        self.context.thresholds = thresholds_of(self._decision)

    def _run_part(self, part: int, given: dict[int, LoadedImage]) -> None:
        """Score one chunk of consecutive images against the pool; unreadable images become errors."""
        from iapas.profiles.offline import prediction_from_map
        from iapas.stages.regions import DESCRIPTION_NOTE

        assert self._pool is not None
        refs = {j: f[0] for j, f in self._pool.items()}
        self._done = {}
        for i in self.parts[part]:
            try:
                image = given[i] if i in given else load_image(self.batch[i])
            except InputError as exc:
                self._done[i] = exc
                continue
            feats = self._pool[i] if i in self._pool else self._features(image.rgb)
            raw = finish_map(score_image(i, feats, refs, self.mutual, self._positions()), image.rgb, self.settings)
            score = calibrated(raw, self._calibration.threshold, self._calibration.floor)
            notes = [ZERO_SHOT_NOTE, DESCRIPTION_NOTE] + (["position-aware: " + self.alignment.rule] if self.alignment.aligned else [])
            self._done[i] = prediction_from_map(image.path, score, "offline", notes, self._decision, rgb=image.rgb)
        self._part = part
