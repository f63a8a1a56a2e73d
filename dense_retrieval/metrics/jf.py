"""DAVIS J&F for whole frames and whole result sets (semi-supervised task).

Pure numpy. :func:`score_frame` scores every object of one frame from two label maps; the
aggregation functions turn per-frame scores into the official per-object and global tables of
davisvideochallenge/davis2017-evaluation:

- objects are ids ``1..K`` where K is the largest id in the sequence's first-frame annotation
  (void 255 excluded); annotation ids above K, and void, are background for every object;
- an object missing from a prediction is scored as an empty prediction;
- J&F-Mean = (mean over objects of J-Mean + mean over objects of F-Mean) / 2, and every other global
  measure is the mean over all objects of the whole set (not over sequences).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..labels import VOID
from .boundary import dilation_radius, f_measure
from .conventions import DEFAULT_BOUND_TH, GLOBAL_COLUMNS, VOID_MODES, JFConventions
from .region import jaccard
from .statistics import Statistics, summarize

__all__ = [
    "GLOBAL_COLUMNS",
    "VOID_MODES",
    "JFConventions",
    "ObjectScores",
    "global_scores",
    "object_scores",
    "score_frame",
]


def score_frame(
    gt: np.ndarray,
    pred: np.ndarray,
    num_objects: int,
    bound_th: float = DEFAULT_BOUND_TH,
    void: str = "background",
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects ``1..num_objects`` in one frame.

    Each object is scored on the crop of its annotation and prediction bounding boxes plus a 1-pixel
    margin, which gives exactly the full-image J and F (all boundary pixels lie in that crop; the
    matching radius comes from the full image size).

    Args:
        gt: uint8 [H, W] annotation ids (255 = void; ids above ``num_objects`` are not scored).
        pred: uint8 [H, W] predicted ids (ids above ``num_objects`` are not scored; callers validate).
        num_objects: K, the number of objects of the sequence.
        bound_th: boundary tolerance (see :func:`..boundary.dilation_radius`).
        void: "background" or "ignore" (see :class:`JFConventions`).

    Returns:
        (j, f): float64 [K] each.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"annotation {gt.shape} and prediction {pred.shape} must be the same 2-D size")
    if void not in VOID_MODES:
        raise ValueError(f"void must be one of {VOID_MODES}, got {void!r}")
    if void == "ignore":
        void_mask = gt == VOID
        if void_mask.any():
            # void is never an object id in gt, so masking only the prediction is the same as masking both
            pred = np.where(void_mask, 0, pred)
    radius = dilation_radius(gt.shape, bound_th)
    height, width = gt.shape
    # one object stored as 0/1 (DAVIS-2016, single-object sequences): the label maps are the masks
    direct = (
        num_objects == 1 and gt.dtype == pred.dtype == np.uint8 and gt.max(initial=0) <= 1 and pred.max(initial=0) <= 1
    )
    j = np.ones(num_objects, dtype=np.float64)
    f = np.ones(num_objects, dtype=np.float64)
    for index in range(num_objects):
        gt_mask = gt if direct else gt == index + 1
        pred_mask = pred if direct else pred == index + 1
        box = _union_box(cv2.boundingRect(gt_mask.view(np.uint8)), cv2.boundingRect(pred_mask.view(np.uint8)))
        if box is None:  # absent from both: empty union and two empty boundaries score 1
            continue
        x0, y0, x1, y1 = box
        rows = slice(max(y0 - 1, 0), min(y1 + 1, height))
        cols = slice(max(x0 - 1, 0), min(x1 + 1, width))
        gt_crop, pred_crop = gt_mask[rows, cols].view(bool), pred_mask[rows, cols].view(bool)
        j[index] = jaccard(gt_crop, pred_crop)
        f[index] = f_measure(gt_crop, pred_crop, radius=radius)
    return j, f


def _union_box(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """Union of two ``cv2.boundingRect`` boxes (x, y, w, h; w = 0: empty), end-exclusive (x0, y0, x1, y1)."""
    boxes = [(x, y, x + w, y + h) for x, y, w, h in (a, b) if w > 0]
    if not boxes:
        return None
    return (
        min(x[0] for x in boxes),
        min(x[1] for x in boxes),
        max(x[2] for x in boxes),
        max(x[3] for x in boxes),
    )


@dataclass(frozen=True)
class ObjectScores:
    """Per-frame J and F of one object of one sequence, with their statistics."""

    sequence: str
    object_id: int
    j: np.ndarray  # float [T]
    f: np.ndarray  # float [T]
    j_stats: Statistics
    f_stats: Statistics

    @property
    def name(self) -> str:
        """The official row name, e.g. ``bike-packing_1``."""
        return f"{self.sequence}_{self.object_id}"

    def row(self) -> dict[str, float]:
        """Mean / Recall / Decay of J and F, plus their average ``J&F-Mean``."""
        return {
            "J&F-Mean": (self.j_stats.mean + self.f_stats.mean) / 2,
            "J-Mean": self.j_stats.mean,
            "J-Recall": self.j_stats.recall,
            "J-Decay": self.j_stats.decay,
            "F-Mean": self.f_stats.mean,
            "F-Recall": self.f_stats.recall,
            "F-Decay": self.f_stats.decay,
        }


def object_scores(
    sequence: str, j: np.ndarray, f: np.ndarray, conventions: JFConventions = JFConventions()
) -> list[ObjectScores]:
    """Split a sequence's scores ``j``, ``f`` float [K, T] into one :class:`ObjectScores` per object."""
    j, f = np.asarray(j, dtype=np.float64), np.asarray(f, dtype=np.float64)
    if j.shape != f.shape or j.ndim != 2:
        raise ValueError(f"j {j.shape} and f {f.shape} must both be [K, T]")
    stats = {"recall_threshold": conventions.recall_threshold, "decay_bins": conventions.decay_bins}
    return [
        ObjectScores(sequence, k + 1, j[k], f[k], summarize(j[k], **stats), summarize(f[k], **stats))
        for k in range(j.shape[0])
    ]


def global_scores(objects: Sequence[ObjectScores]) -> dict[str, float]:
    """The official global table: every measure averaged over all objects of the set."""
    if not objects:
        raise ValueError("no objects to average")
    rows = [obj.row() for obj in objects]
    table = {column: float(np.mean([row[column] for row in rows])) for column in GLOBAL_COLUMNS[1:]}
    return {"J&F-Mean": (table["J-Mean"] + table["F-Mean"]) / 2, **table}
