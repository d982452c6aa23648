"""The taggers of Step 1-1 (RAM / RAM++, or a CLIP-family stand-in): scored tags for each image.

The paper uses RAM. RAM is not on PyPI, so without it a CLIP-family zero-shot tagger (CLIP or SigLIP
through transformers) stands in, scoring iapas's general vocabulary (no benchmark names); the context
and every prediction then say that this deviates from the paper. RAM / RAM++ is preferred: `--tagger
ram` / `ram++`, and the default tagger switches to RAM by itself when the `ram` package is installed
and $IAPAS_RAM_CHECKPOINT names its checkpoint. Tags are aggregated over the r images by how many
images show them (`iapas.stages.tagging`).
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from iapas.config import DEFAULT_TAGGER
from iapas.errors import ModelLoadError
from iapas.modelref import ModelRef, RefKind
from iapas.models.device import resolve_device
from iapas.models.loading import load_cached, load_model, resolve_ref
from iapas.models.vocabulary import vocabulary
from iapas.settings import TaggerSettings

TOP_K = 5  # tags kept per image
MIN_RELATIVE = 0.2  # a tag must score at least this fraction of the image's best tag
TEXT_TEMPLATE = "a photo of a {}."
TEXT_BATCH = 64
SIGLIP_TEXT_LENGTH = 64

ScoredTags = list[tuple[str, float]]


class Tagger(Protocol):
    """Anything that returns scored tags for each RGB image."""

    model_id: str
    revision: str

    def tag(self, images: Sequence[np.ndarray]) -> list[ScoredTags]:
        """Scored tags of each image.

        Args:
            images: RGB images, each (H, W, 3) uint8.
        Returns:
            One list of (tag, score) per image, best first.
        """
        ...


def select_tags(scores: np.ndarray, terms: Sequence[str], top_k: int = TOP_K, min_relative: float = MIN_RELATIVE) -> ScoredTags:
    """Top-k terms of one image whose score is at least `min_relative` x the best score (ties by vocab order).

    Args:
        scores: (T,) score of each term.
        terms: the T terms.
        top_k: most tags kept.
        min_relative: fraction of the best score a kept tag reaches.
    Returns:
        (tag, score) pairs, best first.
    """
    order = sorted(range(len(terms)), key=lambda i: (-float(scores[i]), i))[:top_k]
    if not order:
        return []
    best = float(scores[order[0]])
    return [(terms[i], float(scores[i])) for i in order if float(scores[i]) >= min_relative * best]


CLIP_TYPES = ("clip", "siglip", "siglip2")


class TaggerProcessors:
    """The tokenizer and image processor of a CLIP-family checkpoint, loaded as one 'processor' so the
    tagger goes through models.loading.load_model like every other model."""

    def __init__(self, tokenizer: Any, image_processor: Any) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor

    @classmethod
    def from_pretrained(cls, source: str, **kwargs: Any) -> "TaggerProcessors":
        from transformers import AutoImageProcessor, AutoTokenizer  # transformers: heavy, loaded with the model

        return cls(AutoTokenizer.from_pretrained(source, **kwargs), AutoImageProcessor.from_pretrained(source, **kwargs))


class ClipTagger:
    """Zero-shot tagging with a CLIP or SigLIP checkpoint (hub id or local directory) over a vocabulary."""

    def __init__(self, ref: str, device: str = "auto", terms: Sequence[str] | None = None) -> None:
        import torch  # torch: heavy, loaded only when a model runs
        from transformers import AutoModel  # transformers: heavy, loaded with the model

        # float32 as before (the tagger has no dtype setting); errors, cache and offline rules are the loader's
        loaded = load_model(AutoModel, TaggerProcessors, ref, device, "float32", role="tagger", allowed_types=CLIP_TYPES)
        self.model_id = ref
        self.terms = list(terms) if terms is not None else vocabulary()
        self.device = loaded.device
        self.kind = loaded.model_type
        self.model = loaded.model
        self.tokenizer = loaded.processor.tokenizer
        self.image_processor = loaded.processor.image_processor
        self.revision = loaded.revision
        with torch.inference_mode():
            self._text = self._encode_text(self.terms)

    @staticmethod
    def _pooled(out: Any) -> Any:
        """transformers 5 returns a ModelOutput from get_*_features; 4.x returned the tensor."""
        return out if hasattr(out, "norm") else out.pooler_output

    def _encode_text(self, terms: Sequence[str]) -> Any:
        import torch  # torch: heavy, loaded only when a model runs


        chunks = []
        for start in range(0, len(terms), TEXT_BATCH):
            texts = [TEXT_TEMPLATE.format(t) for t in terms[start : start + TEXT_BATCH]]
            if self.kind == "clip":
                enc = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            else:  # SigLIP was trained on max-length padded text
                enc = self.tokenizer(
                    texts, padding="max_length", max_length=SIGLIP_TEXT_LENGTH, truncation=True, return_tensors="pt"
                )
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            if self.kind != "clip":
                enc.pop("attention_mask", None)
            chunks.append(self._pooled(self.model.get_text_features(**enc)).float())
        feats = torch.cat(chunks)
        return feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def scores(self, rgb: np.ndarray) -> np.ndarray:
        """Per-term probability for one image: softmax over the vocabulary (CLIP) or sigmoid (SigLIP).

        Args:
            rgb: (H, W, 3) uint8 image.
        Returns:
            (T,) float64 probability of each of the T terms.
        """
        import torch  # torch: heavy, loaded only when a model runs


        pixels = self.image_processor(images=[rgb], return_tensors="pt")["pixel_values"].to(self.device)
        with torch.inference_mode():
            img = self._pooled(self.model.get_image_features(pixel_values=pixels)).float()
            img = img / img.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            logits = (img @ self._text.T)[0] * self.model.logit_scale.exp().float()
            if self.kind == "clip":
                probs = logits.softmax(dim=-1)
            else:
                probs = torch.sigmoid(logits + self.model.logit_bias.float())
        return probs.cpu().numpy().astype(np.float64)

    def tag(self, images: Sequence[np.ndarray]) -> list[ScoredTags]:
        """Scored tags of each image over the vocabulary (`select_tags` of `scores`).

        Args:
            images: RGB images, each (H, W, 3) uint8.
        Returns:
            One list of (tag, score) per image, best first.
        """
        return [select_tags(self.scores(rgb), self.terms) for rgb in images]


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class RamTagger:
    """Recognize Anything (RAM / RAM++), the paper's tagger; only when the `ram` package is installed.

    `spec` is 'ram' or 'ram++', optionally followed by ':<checkpoint .pth>'; without a path the
    checkpoint is read from $IAPAS_RAM_CHECKPOINT.
    """

    def __init__(self, spec: str, device: str = "auto") -> None:
        ref = ModelRef.parse(spec, "tagger")
        name, path = ref.name, ref.checkpoint
        self.model_id = ref.text
        try:
            from ram import models as ram_models  # type: ignore[import-not-found]  # ram: optional, not on PyPI
        except ImportError:
            raise ModelLoadError(
                spec,
                "the `ram` package (Recognize Anything) is not installed; it is not on PyPI",
                "install it from its source repository, or use a CLIP-family tagger "
                "(--tagger openai/clip-vit-base-patch32) or --tagger none --object NAME",
            ) from None
        checkpoint = path or os.environ.get("IAPAS_RAM_CHECKPOINT", "")
        if not checkpoint or not Path(checkpoint).is_file():
            raise ModelLoadError(
                spec, f"RAM checkpoint '{checkpoint}' not found", "give --tagger ram++:/path/ram_plus_swin_large_14m.pth"
            )
        self.device = resolve_device(device)
        build = ram_models.ram_plus if name == "ram++" else ram_models.ram
        self.model = build(pretrained=checkpoint, image_size=384, vit="swin_l").eval().to(self.device)
        self.revision = Path(checkpoint).name

    def tag(self, images: Sequence[np.ndarray]) -> list[ScoredTags]:
        """RAM's tags of each image (RAM gives no score: every tag scores 1.0).

        Args:
            images: RGB images, each (H, W, 3) uint8; resized to (384, 384) for the model.
        Returns:
            One list of (tag, 1.0) per image, in RAM's order.
        """
        import torch  # torch: heavy, loaded only when a model runs

        out: list[ScoredTags] = []
        for rgb in images:
            im = Image.fromarray(rgb).resize((384, 384), Image.Resampling.BICUBIC)
            arr = (np.asarray(im, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
            x = torch.from_numpy(arr.transpose(2, 0, 1)).unsqueeze(0).to(self.device)
            with torch.inference_mode():
                english = self.model.generate_tag(x)[0][0]
            out.append([(t.strip().lower(), 1.0) for t in english.split("|") if t.strip()])
        return out


STAND_IN_NOTE = (
    "tags come from a CLIP-family stand-in tagger over iapas's general vocabulary, not from RAM as in the "
    "paper: this deviates from the paper (install RAM and use --tagger ram or ram++)"
)


def ram_installed() -> bool:
    """True when the `ram` package (Recognize Anything) can be imported; checked without importing it."""
    try:
        return importlib.util.find_spec("ram") is not None
    except (ImportError, ValueError):
        return False


def preferred_tagger(ref: str) -> str:
    """RAM in place of the default CLIP tagger when RAM is installed and $IAPAS_RAM_CHECKPOINT is a file.

    An explicit choice (any other `ref`) is kept as given.
    """
    if ref != DEFAULT_TAGGER or not ram_installed():
        return ref
    checkpoint = os.environ.get("IAPAS_RAM_CHECKPOINT", "")
    if not checkpoint or not Path(checkpoint).is_file():
        return ref
    return "ram++" if "plus" in Path(checkpoint).name.lower() else "ram"


def is_stand_in(tagger: Tagger) -> bool:
    """True for the CLIP-family stand-in (anything but RAM / RAM++)."""
    return not isinstance(tagger, RamTagger)


def load_tagger(ref: str, device: str = "auto") -> Tagger:
    """The tagger for `ref` ('ram', 'ram++[:ckpt]', or a CLIP/SigLIP id or dir), loaded once per process
    through the shared model cache (models.loading)."""
    parsed = ModelRef.parse(ref, "tagger")
    if parsed.is_none:
        raise ModelLoadError(parsed.text, "tagging is switched off", "Stage 1 uses --object NAME with --tagger none")
    dev = resolve_device(device)
    if parsed.kind is RefKind.RAM:
        return load_cached(("tagger", parsed.text, dev), parsed.text, "tagger", lambda: RamTagger(parsed.text, dev))
    source = resolve_ref(parsed)
    return load_cached(("tagger", source, dev), parsed.text, "tagger", lambda: ClipTagger(parsed.text, dev))


def load_preferred_tagger(tagger: TaggerSettings) -> Tagger:
    """Stage 1's tagger: `tagger.ref` (RAM in place of the default CLIP when installed), on its device."""
    return load_tagger(preferred_tagger(tagger.ref.text), tagger.device)
