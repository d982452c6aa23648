"""The SAM (or SAM-HQ) backend of Step 2-3: each kept box becomes a mask of the image's size.

Through transformers (SamModel / SamHQModel + AutoProcessor; paper: facebook/sam-vit-huge). The image
embedding, by far the most expensive part, is computed once per image (get_image_embeddings) and
every box is decoded against it in one batch (input_boxes) with multimask_output=False, as the
official code does. Masks are brought back to the image size by processor.post_process_masks.
`iapas.stages.segmentation.segment_detections` attaches them to the Detections, one per box.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from iapas.models.loading import LoadedModel, ModelBackend, load_model
from iapas.types import Detections

SEGMENTER_TYPES = ("sam", "sam_hq")


class SamSegmenter(ModelBackend):
    """Box-prompted masks from a SAM-family checkpoint."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__(loaded)
        self.is_hq = loaded.model_type == "sam_hq"

    def segment(self, rgb: np.ndarray, boxes: Detections | np.ndarray) -> np.ndarray:
        """Box-prompted SAM masks; no model call when N = 0.

        Args:
            rgb: (H, W, 3) uint8 image.
            boxes: Detections, or an (N, 4) array of pixel xyxy of `rgb`.
        Returns:
            (N, H, W) bool masks, one per box, in order.
        """
        import torch  # torch: heavy, loaded only when a model runs

        height, width = rgb.shape[:2]
        source = boxes.xyxy if isinstance(boxes, Detections) else boxes
        xyxy = np.asarray(source, dtype=np.float64).reshape(-1, 4)
        if xyxy.shape[0] == 0:
            return np.zeros((0, height, width), dtype=bool)
        image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
        inputs = self.processor(images=image, input_boxes=[xyxy.tolist()], return_tensors="pt")
        device, dtype = self.loaded.device, self.model.dtype
        with torch.inference_mode():
            emb = self.model.get_image_embeddings(inputs["pixel_values"].to(device=device, dtype=dtype))
            kwargs = {"input_boxes": inputs["input_boxes"].to(device=device, dtype=dtype), "multimask_output": False}
            if self.is_hq:  # SamHQModel returns (image_embeddings, intermediate_embeddings)
                kwargs.update(image_embeddings=emb[0], intermediate_embeddings=emb[1])
            else:
                kwargs["image_embeddings"] = emb
            out = self.model(**kwargs)
        masks = self.processor.post_process_masks(
            out.pred_masks.float().cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )[0]  # (N, 1, H, W) bool
        return masks[:, 0].numpy().astype(bool)


def load_segmenter(ref: str, device: str = "auto", dtype: str = "auto") -> SamSegmenter:
    """Load (once per process) a SAM / SAM-HQ checkpoint by hub id or local folder."""
    from transformers import AutoModel, AutoProcessor  # transformers: heavy, loaded with the model

    loaded = load_model(AutoModel, AutoProcessor, ref, device, dtype, role="segmenter", allowed_types=SEGMENTER_TYPES)
    return SamSegmenter(loaded)
