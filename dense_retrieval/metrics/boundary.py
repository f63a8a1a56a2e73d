"""Boundary accuracy F: precision and recall of object contours matched within a small disk.

Follows ``f_measure`` / ``_seg2bmap`` of davisvideochallenge/davis2017-evaluation (after the BSDS
benchmark): contours are 1-pixel boundary maps of each mask (void pixels removed from the mask
first); a predicted boundary pixel is matched if a ground-truth boundary pixel lies within the disk
of radius ``ceil(bound_th * image diagonal)`` around it (8 px at 480x854), and vice versa;
F = 2PR / (P + R). Both boundaries empty scores 1; exactly one empty scores 0.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from .conventions import DEFAULT_BOUND_TH


def dilation_radius(shape: tuple[int, ...], bound_th: float = DEFAULT_BOUND_TH) -> float:
    """Radius of the matching disk for an image of ``shape`` (H, W).

    Args:
        shape: the full image size (H, W); never a crop's.
        bound_th: below 1, a fraction of the image diagonal (rounded up to whole pixels);
            1 or more, the radius in pixels as given.
    """
    if bound_th >= 1:
        return float(bound_th)
    return float(np.ceil(bound_th * np.linalg.norm(shape[:2])))


@functools.lru_cache(maxsize=16)
def disk(radius: float) -> np.ndarray:
    """Flat disk footprint uint8 [n, n]: 1 where ``x**2 + y**2 <= radius**2``, x, y in ``arange(-r, r + 1)``.

    The same footprint as ``skimage.morphology.disk`` (which the reference uses). Cached and read-only.
    """
    steps = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(steps, steps)
    kernel = ((xx**2 + yy**2) <= radius**2).astype(np.uint8)
    kernel.setflags(write=False)
    return kernel


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """1-pixel boundary map of a binary mask (BSDS ``seg2bmap``), offset half a pixel towards the origin.

    A pixel is a boundary pixel when it differs from its east, south or south-east neighbour; on the
    last row only the east neighbour counts, on the last column only the south one, and the
    bottom-right pixel never is one.

    Args:
        mask: bool [H, W].

    Returns:
        bool [H, W].
    """
    seg = np.asarray(mask)
    seg = seg if seg.dtype == bool else seg.astype(bool)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap needs a 2-D mask, got shape {seg.shape}")
    out = np.zeros(seg.shape, dtype=bool)
    if seg.size == 0:
        return out
    centre = seg[:-1, :-1]
    inner = out[:-1, :-1]
    np.not_equal(centre, seg[:-1, 1:], out=inner)
    inner |= centre != seg[1:, :-1]
    inner |= centre != seg[1:, 1:]
    np.not_equal(seg[-1, :-1], seg[-1, 1:], out=out[-1, :-1])
    np.not_equal(seg[:-1, -1], seg[1:, -1], out=out[:-1, -1])
    return out


def f_measure(
    gt: np.ndarray,
    pred: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
    *,
    radius: float | None = None,
) -> float:
    """Boundary F-measure of one object in one frame.

    Args:
        gt: bool [H, W], the annotated object.
        pred: bool [H, W], the predicted object.
        void: bool [H, W] or None; void pixels are removed from both masks before taking boundaries.
        bound_th: matching tolerance (see :func:`dilation_radius`).
        radius: the matching radius in pixels, overriding ``bound_th``; pass it when ``gt``/``pred`` are
            crops of a larger image (the radius belongs to the full image). Exact on a crop that keeps
            a 1-pixel margin around both masks wherever the image allows.

    Returns:
        F in [0, 1].
    """
    gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"annotation {gt.shape} and prediction {pred.shape} differ in shape")
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        gt, pred = gt & keep, pred & keep
    if radius is None:
        radius = dilation_radius(gt.shape, bound_th)
    return boundary_f_from_maps(seg2bmap(gt), seg2bmap(pred), radius)


def boundary_f_from_maps(gt_boundary: np.ndarray, pred_boundary: np.ndarray, radius: float) -> float:
    """F from two boundary maps (bool [H, W]), matching within ``disk(radius)``."""
    n_gt = int(np.count_nonzero(gt_boundary))
    n_pred = int(np.count_nonzero(pred_boundary))
    if n_gt == 0 or n_pred == 0:
        return 1.0 if n_gt == n_pred else 0.0
    kernel = disk(radius)
    gt_boundary = np.ascontiguousarray(gt_boundary, dtype=bool)
    pred_boundary = np.ascontiguousarray(pred_boundary, dtype=bool)
    gt_dilated = cv2.dilate(gt_boundary.view(np.uint8), kernel).view(bool)
    pred_dilated = cv2.dilate(pred_boundary.view(np.uint8), kernel).view(bool)
    precision = np.count_nonzero(pred_boundary & gt_dilated) / float(n_pred)
    recall = np.count_nonzero(gt_boundary & pred_dilated) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
