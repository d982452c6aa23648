"""Class-agnostic non-maximum suppression (Step 2-1, paper IoU 0.5) over the boxes of all prompt chunks.

Class-agnostic because one defect found by two words ("crack", "fracture") is still one region;
keeping both would count its mask twice in the score map. Same semantics as torchvision.ops.nms
(greedy by score; a box is dropped when its IoU with a kept box is strictly above the threshold),
which is not importable here.
"""
from __future__ import annotations

import numpy as np

from iapas.types import Detections


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` with every box in `b`; 0 where the union is empty.

    Args:
        a: (N, 4) boxes, xyxy.
        b: (M, 4) boxes, xyxy.
    Returns:
        (N, M) float64 IoU.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms_indices(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, highest score first (stable for equal scores).

    Args:
        xyxy: (N, 4) boxes.
        scores: (N,) scores.
        iou_threshold: a box overlapping a kept one by more than this is removed.
    Returns:
        (K,) int indices into the N boxes.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    iou = iou_matrix(xyxy, xyxy)[np.ix_(order, order)]
    suppressed = np.zeros(order.size, dtype=bool)
    for i in range(order.size):
        if suppressed[i]:
            continue
        suppressed[i + 1 :] |= iou[i, i + 1 :] > iou_threshold
    return order[~suppressed]


def nms(detections: Detections, iou_threshold: float = 0.5) -> Detections:
    """The detections that survive class-agnostic NMS, highest score first (masks, if any, follow)."""
    return detections[nms_indices(detections.xyxy, detections.scores, iou_threshold)]
