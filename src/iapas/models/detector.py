"""The detectors of Step 2-1: open-vocabulary detection of the prompt phrases (Grounding DINO, MM-Grounding-DINO, OWLv2).

All backends load through transformers (AutoModelForZeroShotObjectDetection + AutoProcessor) and are
chosen by the checkpoint's config.model_type, so a user can swap the paper's
IDEA-Research/grounding-dino-tiny for an MM-Grounding-DINO or OWLv2 checkpoint (id or local folder).

Grounding DINO reads one caption "a. b. c." (lower case) whose tokens must fit the text encoder
(config.max_text_len, 256 for the released models); longer prompts are split into chunks, each chunk
is detected separately and the boxes of all chunks are returned together (NMS is the caller's job,
class-agnostic over every chunk). OWLv2 takes one query per phrase, so it needs no chunking and
has no text threshold. Boxes come back as `Detections` in pixel xyxy of the given image, NOT clipped to
it: as in the official code, NMS and the size filter see the detector's own boxes, and boxes are clipped
only right before SAM (`Detections.clipped`). A box with nothing inside the image is dropped.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from iapas.detections import Detections
from iapas.errors import ModelLoadError
from iapas.models.loading import LoadedModel, ModelBackend, load_model
from iapas.phrases import normalize_phrase

GROUNDING_TYPES = ("grounding-dino", "mm-grounding-dino")
OWL_TYPES = ("owlv2", "owlvit")
DETECTOR_TYPES = GROUNDING_TYPES + OWL_TYPES
_SPECIAL = re.compile(r"\[[A-Z]+\]|<\|[a-z]+\|>")


def normalize_phrases(phrases: Sequence[str]) -> list[str]:
    """Lower-case, strip dots/extra spaces, drop empties and duplicates (order kept).

    Dots are removed because Grounding DINO uses '.' as the phrase separator.
    """
    out: list[str] = []
    for p in phrases:
        clean = " ".join(p.replace(".", " ").lower().split())
        if clean and clean not in out:
            out.append(clean)
    return out


def caption(phrases: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Grounding DINO caption 'a. b. c.' and each phrase's character span in it."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for p in phrases:
        spans.append((pos, pos + len(p)))
        parts.append(p + ".")
        pos += len(p) + 2  # phrase, '.', ' '
    return " ".join(parts), spans


def chunk_phrases(phrases: Sequence[str], count_tokens: Callable[[str], int], max_tokens: int) -> list[list[str]]:
    """Greedy split into consecutive chunks whose caption has at most `max_tokens` tokens.

    A phrase too long on its own gets its own chunk (the text encoder then truncates it).
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    for p in phrases:
        trial = current + [p]
        if current and count_tokens(caption(trial)[0]) > max_tokens:
            chunks.append(current)
            current = [p]
        else:
            current = trial
    if current:
        chunks.append(current)
    return chunks


def token_spans(offsets: Sequence[tuple[int, int]], char_spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """For each phrase, the indices of the tokens whose characters fall inside its span."""
    out: list[list[int]] = []
    for start, end in char_spans:
        out.append([i for i, (s, e) in enumerate(offsets) if e > s and s >= start and e <= end])
    return out


def assign_phrase(label: str, phrases: Sequence[str], span_scores: Sequence[float]) -> str:
    """Map a post-processed text label back to one prompt phrase.

    Exact match first; else the phrase sharing words with the label (Grounding DINO can return a
    sub-word set such as 'tile' or 'crack scratch'); an empty label, or one sharing no word, goes to
    the phrase whose tokens the box matched most strongly (closest in the model's own view).
    Ties among word-sharing phrases are also broken by that token score.
    """
    norm = raw_label(label)
    normed = [normalize_phrase(p) for p in phrases]
    if norm in normed:
        return phrases[normed.index(norm)]
    words = set(norm.split())
    scores = list(span_scores) + [0.0] * (len(phrases) - len(span_scores))
    candidates = [i for i, p in enumerate(normed) if words & set(p.split())]
    pool = candidates or list(range(len(phrases)))
    best = max(pool, key=lambda i: (scores[i], len(words & set(normed[i].split())), -i))
    return phrases[best]


def raw_label(label: str) -> str:
    """The detector's text label as words ('Tile  metal [SEP]' -> 'tile metal'); '' when it holds none."""
    return normalize_phrase(_SPECIAL.sub(" ", label))


def clip_box(xyxy: Sequence[float], width: int, height: int) -> tuple[float, float, float, float] | None:
    """Box clipped to the image; None when nothing of it is left."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    width, height = float(width), float(height)
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1)


def _float_outputs(outputs: Any) -> SimpleNamespace:
    """logits / pred_boxes as float32 on CPU (half-precision models post-process the same way)."""
    return SimpleNamespace(logits=outputs.logits.float().cpu(), pred_boxes=outputs.pred_boxes.float().cpu())


class GroundingDinoDetector(ModelBackend):
    """Grounding DINO / MM-Grounding-DINO through transformers; implements types.DetectorLike."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__(loaded)
        cfg = self.model.config
        limits = [int(cfg.max_text_len), int(getattr(cfg.text_config, "max_position_embeddings", 10**6))]
        tok_max = getattr(self.processor.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 10**6:
            limits.append(tok_max)
        self.max_tokens = min(limits)

    def count_tokens(self, text: str) -> int:
        return len(self.processor.tokenizer(text)["input_ids"])

    def chunks(self, phrases: Sequence[str]) -> list[list[str]]:
        return chunk_phrases(normalize_phrases(phrases), self.count_tokens, self.max_tokens)

    def detect(self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float) -> Detections:
        """Boxes of every chunk of the prompt, each named by one prompt phrase; no NMS.

        Args:
            rgb: (H, W, 3) uint8 image.
            phrases: the prompt phrases.
            box_threshold, text_threshold: Grounding DINO's two thresholds.
        Returns:
            Detections with xyxy (N, 4) in pixels of `rgb` (not clipped), scores (N,) and phrases.
        """
        return self._detect(rgb, phrases, box_threshold, text_threshold, raw_labels=False)

    def detect_raw(self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float) -> Detections:
        """As `detect`, but each box keeps the detector's own text label.

        The label is the prompt tokens above the text threshold, possibly several phrases merged ("tile
        metal"), as the official object-tag rule uses it.

        Args:
            rgb: (H, W, 3) uint8 image.
            phrases: the prompt phrases.
            box_threshold, text_threshold: Grounding DINO's two thresholds.
        Returns:
            Detections with xyxy (N, 4) in pixels of `rgb`, scores (N,) and the raw labels as phrases.
        """
        return self._detect(rgb, phrases, box_threshold, text_threshold, raw_labels=True)

    def _detect(self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float, raw_labels: bool) -> Detections:
        image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
        return Detections.merge([
            self._detect_chunk(image, chunk, box_threshold, text_threshold, raw_labels=raw_labels)
            for chunk in self.chunks(phrases)
        ])

    def _detect_chunk(
        self, image: Any, chunk: list[str], box_threshold: float, text_threshold: float, raw_labels: bool = False
    ) -> Detections:
        import torch  # torch: heavy, loaded only when a model runs


        text, char_spans = caption(chunk)
        enc = self.processor.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=self.max_tokens)
        spans = token_spans([tuple(o) for o in enc["offset_mapping"]], char_spans)
        inputs = self.processor(
            images=image, text=text, return_tensors="pt", truncation=True, max_length=self.max_tokens
        ).to(self.loaded.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        return self.boxes_from_outputs(
            _float_outputs(outputs), inputs["input_ids"].cpu(), spans, chunk, box_threshold, text_threshold,
            (image.height, image.width), raw_labels=raw_labels,
        )

    def boxes_from_outputs(
        self,
        outputs: Any,
        input_ids: Any,
        spans: Sequence[Sequence[int]],
        chunk: Sequence[str],
        box_threshold: float,
        text_threshold: float,
        size_hw: tuple[int, int],
        raw_labels: bool = False,
    ) -> Detections:
        """Post-process one chunk's outputs (logits, pred_boxes in normalised cxcywh) to pixel boxes.

        `raw_labels`: name each box by the detector's cleaned text label (falling back to the assigned
        phrase when the label is empty) instead of mapping it to one prompt phrase.
        """
        import torch  # torch: heavy, loaded only when a model runs


        height, width = size_hw
        result = self.processor.post_process_grounded_object_detection(
            outputs, input_ids, threshold=box_threshold, text_threshold=text_threshold, target_sizes=[(height, width)]
        )[0]
        probs = torch.sigmoid(outputs.logits[0])
        kept_probs = probs[probs.max(dim=-1).values > box_threshold]
        if kept_probs.shape[0] != len(result["scores"]):  # the processor changed its keep rule
            raise RuntimeError("Grounding DINO post-processing kept an unexpected number of boxes")
        xyxys: list[tuple[float, float, float, float]] = []
        scores: list[float] = []
        names: list[str] = []
        for q, (xyxy, score) in enumerate(zip(result["boxes"].tolist(), result["scores"].tolist())):
            if clip_box(xyxy, width, height) is None:
                continue
            span_scores = [float(kept_probs[q, s].max()) if len(s) else 0.0 for s in spans]
            label = result["text_labels"][q]
            phrase = assign_phrase(label, chunk, span_scores)
            if raw_labels:
                phrase = raw_label(label) or phrase
            xyxys.append(tuple(float(v) for v in xyxy))
            scores.append(float(score))
            names.append(phrase)
        return Detections(xyxys, scores, names)


class OwlDetector(ModelBackend):
    """OWLv2 / OWL-ViT: one text query per phrase; the text threshold does not apply."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__(loaded)
        self.pads_to_square = loaded.model_type == "owlv2"

    def detect(self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float) -> Detections:
        """One query per phrase; the text threshold does not apply to OWL.

        Args:
            rgb: (H, W, 3) uint8 image.
            phrases: the prompt phrases.
            box_threshold: minimum box score.
            text_threshold: unused (kept for `types.DetectorLike`).
        Returns:
            Detections with xyxy (N, 4) in pixels of `rgb`, scores (N,) and phrases.
        """
        import torch  # torch: heavy, loaded only when a model runs

        queries = normalize_phrases(phrases)
        if not queries:
            return Detections.empty()
        image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
        inputs = self.processor(text=[queries], images=image, return_tensors="pt", truncation=True).to(self.loaded.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        return self.boxes_from_outputs(_float_outputs(outputs), queries, box_threshold, (image.height, image.width))

    def detect_raw(self, rgb: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float) -> Detections:
        """Same as `detect`: OWL scores each query on its own, so its label is always exactly one phrase.

        Args:
            rgb: (H, W, 3) uint8 image.
            phrases: the prompt phrases.
            box_threshold: minimum box score.
            text_threshold: unused.
        Returns:
            Detections with xyxy (N, 4) in pixels of `rgb`, scores (N,) and phrases.
        """
        return self.detect(rgb, phrases, box_threshold, text_threshold)

    def boxes_from_outputs(
        self, outputs: Any, queries: Sequence[str], box_threshold: float, size_hw: tuple[int, int]
    ) -> Detections:
        """Pixel boxes; OWLv2 pads the image bottom/right to a square, so boxes scale by the long side."""
        height, width = size_hw
        side = max(height, width)
        target = (side, side) if self.pads_to_square else (height, width)
        result = self.processor.post_process_grounded_object_detection(
            outputs, threshold=box_threshold, target_sizes=[target], text_labels=[list(queries)]
        )[0]
        xyxys: list[tuple[float, float, float, float]] = []
        scores: list[float] = []
        names: list[str] = []
        for xyxy, score, label in zip(result["boxes"].tolist(), result["scores"].tolist(), result["labels"].tolist()):
            if clip_box(xyxy, width, height) is not None:
                xyxys.append(tuple(float(v) for v in xyxy))
                scores.append(float(score))
                names.append(queries[int(label)])
        return Detections(xyxys, scores, names)


def load_detector(ref: str, device: str = "auto", dtype: str = "auto") -> GroundingDinoDetector | OwlDetector:
    """Load (once per process) the detector named by a hub id or local folder; backend by model_type."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor  # transformers: heavy

    loaded = load_model(
        AutoModelForZeroShotObjectDetection, AutoProcessor, ref, device, dtype, role="detector",
        allowed_types=DETECTOR_TYPES,
    )
    if loaded.model_type in GROUNDING_TYPES:
        return GroundingDinoDetector(loaded)
    if loaded.model_type in OWL_TYPES:
        return OwlDetector(loaded)
    raise ModelLoadError(ref, f"model type '{loaded.model_type}' is not a supported detector", "use Grounding DINO or OWLv2")
