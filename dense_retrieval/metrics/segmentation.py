"""Semantic segmentation mIoU from a confusion matrix (pure numpy).

Convention of MaskContrast's evaluation (its ``SemsegMeter``): true positives, false positives and
false negatives are summed over the whole set, pixels whose ground truth is ``ignore_index`` (255)
are left out, IoU = TP / (TP + FP + FN) per class, and a class that never occurs in prediction nor
ground truth scores 0 (``absent="zero"``). The mean runs over the classes not ``excluded``: the
21-class VOC number keeps background, the 7-class number excludes it and the 14 unused classes.

Hungarian matching (open-hummingbird-eval's ``PredsmIoU``, used by its published numbers): predicted
classes are first assigned one-to-one to true classes so that the summed IoU is largest
(:func:`hungarian_mapping`, scipy's ``linear_sum_assignment`` on 1 - IoU), and the confusion matrix's
columns are merged by that assignment (:func:`remap_confusion`) before TP/FP/FN are read off.

No I/O, no printing (docs/architecture.md, house rule 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..labels import VOID

AbsentPolicy = Literal["zero", "skip"]


class ConfusionMeter:
    """Accumulates a ``[num_classes, num_classes]`` confusion matrix (rows: ground truth, cols: prediction).

    Args:
        num_classes: labels are ``0 .. num_classes - 1``.
        ignore_index: ground-truth value left out of every count (VOC: 255).
    """

    def __init__(self, num_classes: int, ignore_index: int = VOID):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        """Add one image (or a batch) of predictions.

        Args:
            prediction: integer [...] in ``0 .. num_classes - 1``.
            target: integer [...] of the same shape; ``ignore_index`` pixels are skipped.

        Raises:
            ValueError: shapes differ, or a label falls outside the class range.
        """
        prediction = np.asarray(prediction)
        target = np.asarray(target)
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
        valid = target != self.ignore_index
        pred = prediction[valid].astype(np.int64)
        true = target[valid].astype(np.int64)
        for name, values in (("prediction", pred), ("target", true)):
            if values.size and (values.min() < 0 or values.max() >= self.num_classes):
                raise ValueError(f"{name} label outside 0..{self.num_classes - 1}: {values.min()}..{values.max()}")
        self.confusion += np.bincount(true * self.num_classes + pred, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def counts(self) -> dict[str, np.ndarray]:
        """Per-class ``tp``, ``fp``, ``fn`` (int64 [num_classes] each)."""
        return confusion_counts(self.confusion)

    def iou(self, absent: AbsentPolicy = "zero") -> np.ndarray:
        """Per-class IoU, float64 [num_classes]; absent classes are 0 (``"zero"``) or NaN (``"skip"``)."""
        return iou_from_confusion(self.confusion, absent)

    def miou(self, exclude: Iterable[int] = (), absent: AbsentPolicy = "zero") -> float:
        """Mean IoU over the classes not in ``exclude`` (absent classes per ``absent``)."""
        return mean_iou(self.iou(absent), exclude)


def confusion_counts(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """TP, FP and FN per class from a confusion matrix (rows: ground truth, cols: prediction)."""
    tp = np.diag(confusion).astype(np.int64)
    return {"tp": tp, "fp": confusion.sum(0) - tp, "fn": confusion.sum(1) - tp}


def iou_from_confusion(confusion: np.ndarray, absent: AbsentPolicy = "zero") -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class, float64 [num_classes]."""
    counts = confusion_counts(confusion)
    union = counts["tp"] + counts["fp"] + counts["fn"]
    iou = np.where(union > 0, counts["tp"] / np.maximum(union, 1), 0.0 if absent == "zero" else np.nan)
    return iou.astype(np.float64)


def mean_iou(iou: np.ndarray, exclude: Sequence[int] | Iterable[int] = ()) -> float:
    """Mean of ``iou`` over the kept classes, NaN entries skipped."""
    keep = np.ones(len(iou), dtype=bool)
    keep[list(exclude)] = False
    values = iou[keep]
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def hungarian_mapping(confusion: np.ndarray) -> np.ndarray:
    """int64 [P]: the true class each predicted class is matched to, one-to-one, maximising summed IoU.

    The IoU of true class r and predicted class c is ``n_rc / (row_r + col_c - n_rc)`` (0 where both are
    empty). Predicted classes left without a partner (more predicted than true classes) map to 0, as in
    the reproduction.

    Args:
        confusion: int [G, P] (rows: ground truth, cols: prediction).
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    union = confusion.sum(1, keepdims=True) + confusion.sum(0, keepdims=True) - confusion
    iou = np.divide(confusion, union, out=np.zeros_like(confusion), where=union > 0)
    rows, cols = linear_sum_assignment(1.0 - iou)
    mapping = np.zeros(confusion.shape[1], dtype=np.int64)
    mapping[cols] = rows
    return mapping


def remap_confusion(confusion: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """int64 [G, G]: ``confusion`` [G, P] with every predicted column c added to column ``mapping[c]``."""
    confusion = np.asarray(confusion, dtype=np.int64)
    merged = np.zeros((confusion.shape[0], confusion.shape[0]), dtype=np.int64)
    np.add.at(merged.T, np.asarray(mapping), confusion.T)
    return merged
