"""The `paper` profile: IAP-AS with real models through transformers (Grounding DINO + SAM by default).

fit: Stage 1 (iapas.stages.stage1.build_context) with the detector used to ground the object tag.
predict, per image (Stage 2, as in the official code; docs/fidelity.md has every step side by side):
  1. object box: the detector run on the object tag alone, NMS, highest-scoring box (Step 1-2);
  2. anomaly boxes: the detector on the final prompt (chunked), class-agnostic NMS (Step 2-1); boxes
     labelled with the object tag are kept, as in the paper (`drop_object_boxes` is iapas's option);
  3. size filter against the object box unless use_filter is off or the run is the baseline (Step 2-2);
     NMS and the filter see the detector's boxes as they are, areas included (not clipped to the image);
  4. boxes clipped to the image, then SAM on them (Step 2-3); score map = sum s_i m_i, NOT clipped (Step 2-4): `NAME.npy`
     holds the raw sum, displays clip it; the image score is the map's maximum.
Models load lazily, once per process (iapas.models.loading caches them across profiles too).
Thresholds come from the context only (reviewable, editable; Stage 1 stores them, resolved once from
the config by iapas.settings). Models and switches come from the profile's Settings.
"""
from __future__ import annotations

from typing import Any

from iapas.context import Context
from iapas.errors import SettingsError
from iapas.config import PipelineConfig
from iapas.io.images import LoadedImage
from iapas.profiles.base import Profile, register_profile
from iapas.settings import Settings, Thresholds
from iapas.stages.nms import nms
from iapas.stages.scoring import binary_mask, detections_map, image_score
from iapas.stages.segmentation import segment_detections
from iapas.models.tagger import STAND_IN_NOTE
from iapas.stages.size_filter import drop_object_boxes, find_object_box, object_area_fraction, size_filter
from iapas.types import Box, Detections, Prediction

PROFILE = "paper"
PAPER_MODELS = frozenset({"detector", "segmenter", "tagger", "llm"})


def fidelity_notes(context: Context) -> list[str]:
    """Per-prediction notes on deviations from the paper recorded in the context (e.g. the CLIP stand-in)."""
    tagger = (context.fidelity.tagger if context.fidelity is not None else None) or ""
    return [STAND_IN_NOTE] if tagger.startswith("clip") else []


def check_object_source(config: PipelineConfig) -> None:
    """Without a tagger the object tag must be given (`--object`).

    Raises:
        SettingsError: `--tagger none` without `--object`.
    """
    if config.tagger_ref.is_none and not config.object_name:
        raise SettingsError("invalid settings:\n  --tagger none needs --object NAME (the object tag to use)")


@register_profile(PROFILE)
class PaperProfile(Profile):
    """The paper's method; detector and segmenter are loaded on first use."""

    models = PAPER_MODELS
    map_scale = "confidence"

    def __init__(self, settings: Settings, detector: Any | None = None, segmenter: Any | None = None) -> None:
        super().__init__(settings)
        self._detector = detector
        self._segmenter = segmenter

    @classmethod
    def check_config(cls, config: PipelineConfig) -> None:
        """Refuse `--tagger none` without `--object` before anything loads."""
        check_object_source(config)

    @property
    def detector(self) -> Any:
        """The detector (`types.DetectorLike`), loaded on first use."""
        if self._detector is None:
            from iapas.models.detector import load_detector

            d = self.settings.detector
            self._detector = load_detector(d.model, d.device, d.dtype)
        return self._detector

    @property
    def segmenter(self) -> Any:
        """The segmenter (SAM), loaded on first use."""
        if self._segmenter is None:
            from iapas.models.segmenter import load_segmenter

            m = self.settings.segmenter
            self._segmenter = load_segmenter(m.model, m.device, m.dtype)
        return self._segmenter

    def fit(self, normal: list[LoadedImage]) -> Context:
        """Stage 1; records the detector and segmenter ids and revisions in context.models.

        The detector is loaded only when Stage 1 grounds tags with it; SAM is never loaded here (its
        revision is read from the local folder or HF cache), so `iapas prompts` stays light.
        """
        from iapas.stages.stage1 import build_context

        settings = self.settings
        tagging = settings.tagger
        grounding = not settings.switches.baseline and not tagging.ref.is_none and not tagging.object_name
        context = build_context(normal, settings, self.detector if grounding else None, PROFILE)
        context.models["detector"] = self._model_record(self._detector, settings.detector.model, settings.detector.dtype)
        context.models["segmenter"] = self._model_record(self._segmenter, settings.segmenter.model,
                                                         settings.segmenter.dtype)
        return context

    @staticmethod
    def _model_record(model: Any | None, ref: str, dtype: str) -> dict[str, str | None]:
        """{id, revision, dtype} of a loaded model, else of the reference as resolved on disk (no network)."""
        if model is not None:
            loaded = getattr(model, "loaded", None)
            return {"id": model.model_id, "revision": getattr(model, "revision", None) or "local",
                    "dtype": getattr(loaded, "dtype", dtype)}
        from iapas.models.resolve import describe_model

        info = describe_model(ref)
        return {"id": ref, "revision": info["revision"], "dtype": dtype}

    def precision_notes(self) -> list[str]:
        """A note per loaded Stage 2 model that does not run in float32 (the official code's precision)."""
        notes = []
        for role, model in (("detector", self._detector), ("segmenter", self._segmenter)):
            dtype = getattr(getattr(model, "loaded", None), "dtype", None)
            if dtype is not None and dtype != "float32":
                notes.append(f"{role} ran in {dtype} (--dtype); the official code runs it in float32")
        return notes

    @staticmethod
    def thresholds(context: Context) -> Thresholds:
        """box / text threshold, NMS IoU and size threshold, as Stage 1 stored them in the context."""
        th = context.thresholds
        if th is None or None in (th.box_threshold, th.text_threshold, th.nms_iou, th.size_threshold):
            raise SettingsError("the context holds no Stage 2 thresholds (thresholds.box_threshold, ...); "
                                "build it with `iapas prompts --profile paper` or add them to the context file")
        return th

    def object_box(self, rgb: Any, object_tag: str | None, th: Thresholds) -> Box | None:
        """Highest-scoring box of a detector pass on the object tag alone (after NMS).

        Args:
            rgb: (H, W, 3) uint8 image.
            object_tag: the context's object tag (None: no object box).
            th: the context's Stage 2 thresholds.

        Returns:
            The object box, or None when the tag is empty or nothing is found.
        """
        if not object_tag:
            return None
        found = self.detector.detect(rgb, [object_tag], th.box_threshold, th.text_threshold)
        return find_object_box(nms(found, th.nms_iou), object_tag)

    def predict(self, image: LoadedImage, context: Context) -> Prediction:
        """Stage 2 on one image.

        Args:
            image: the image to check.
            context: a paper context (final prompt, object tag, thresholds).

        Returns:
            The prediction: (H, W) float32 map sum s_i m_i (not clipped), its (H, W) bool mask, the kept boxes
            with their (N, H, W) SAM masks, the boxes the size filter removed and the object box.
        """
        phrases = list(context.final_prompt)
        if not phrases:
            raise SettingsError(
                "the context has an empty final prompt; build it with `iapas prompts --profile paper` "
                "or edit final_prompt in the context file"
            )
        rgb = image.rgb
        height, width = rgb.shape[:2]
        th = self.thresholds(context)
        notes: list[str] = []
        built_with = (context.models.get("detector") or {}).get("id")
        if built_with and built_with != self.detector.model_id:
            notes.append(f"context was built with detector '{built_with}'; Stage 2 used '{self.detector.model_id}'")
        notes.extend(fidelity_notes(context))
        switches = self.settings.switches
        baseline = switches.baseline
        obj = None if baseline else self.object_box(rgb, context.object_tag, th)
        found = self.detector.detect(rgb, phrases, th.box_threshold, th.text_threshold)
        anomalies = nms(found, th.nms_iou)
        if switches.drop_object_boxes:
            anomalies = drop_object_boxes(anomalies, context.object_tag)
        removed = Detections.empty()
        if switches.use_filter and not baseline:  # the official "base" runs no size filter
            area = object_area_fraction(obj, width, height)
            if obj is None:
                notes.append("no object box found: size filter used the whole image as the object")
            anomalies, removed = size_filter(anomalies, area, width, height, th.size_threshold)
        # the official order: NMS and the size filter on the detector's boxes, clipped only before SAM
        anomalies = segment_detections(self.segmenter, rgb, anomalies.clipped(width, height))
        removed = removed.clipped(width, height)
        if obj is not None:
            obj = Detections.from_boxes([obj]).clipped(width, height).box(0)
        notes.extend(self.precision_notes())
        smap = detections_map(anomalies, (height, width), clip=False)
        return Prediction(
            path=image.path,
            score_map=smap,
            mask=binary_mask(smap),
            boxes=anomalies,
            image_score=image_score(smap),
            profile=PROFILE,
            removed_boxes=removed,
            object_box=obj,
            notes=notes,
        )
