"""Region similarity J: the Jaccard index (IoU) of one object in one frame.

Follows ``db_eval_iou`` of davisvideochallenge/davis2017-evaluation: pixels marked void are left out
of both the intersection and the union, and an empty union (the object is absent from both the
annotation and the prediction) scores 1.
"""

from __future__ import annotations

import numpy as np


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """J of one object in one frame.

    Args:
        gt: bool [H, W], the annotated object.
        pred: bool [H, W], the predicted object.
        void: bool [H, W] or None; True pixels are ignored (DAVIS label 255).

    Returns:
        |gt & pred| / |gt | pred| over non-void pixels; 1.0 when that union is empty.
    """
    gt, pred = _as_bool(gt), _as_bool(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"annotation {gt.shape} and prediction {pred.shape} differ in shape")
    if void is not None:
        void = _as_bool(void)
        gt, pred = gt & ~void, pred & ~void
    return jaccard_from_counts(int(np.count_nonzero(gt & pred)), int(np.count_nonzero(gt)), int(np.count_nonzero(pred)))


def jaccard_from_counts(intersection: int, gt_area: int, pred_area: int) -> float:
    """J from pixel counts: ``intersection / (gt_area + pred_area - intersection)``; 1.0 if that is 0."""
    union = gt_area + pred_area - intersection
    return 1.0 if union == 0 else intersection / union


def _as_bool(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    return mask if mask.dtype == bool else mask.astype(bool)
