"""PCK: the percentage of correct keypoints, as CRW scores JHMDB pose propagation (pure numpy).

Convention of ajabri/videowalk ``code/eval/eval_pck.py`` (:class:`~.conventions.PCKConventions`): in
every frame but the first, each scored joint's error is its distance to the ground truth divided by
0.6 x the diagonal of the box around that frame's scored ground-truth joints; it is correct at threshold
``t`` when the error is ``<= t``. PCK of a joint = correct / scored over all videos and frames; the
headline number is the mean of the per-joint PCKs (not the pooled fraction). A frame whose normaliser
is 0 scores its joints as misses (CRW divides by zero and counts them).

No I/O, no printing (docs/architecture.md, house rule 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .conventions import PCKConventions


@dataclass(frozen=True)
class PCKScores:
    """PCK over a set of videos.

    Attributes:
        thresholds: the thresholds, ``[K]``.
        per_joint: float64 ``[K, J]`` fractions in [0, 1]; NaN for a joint never scored.
        mean: float64 ``[K]``: the mean over the scored joints of ``per_joint`` (the published number).
        scored: int64 ``[J]``: how many (frame, joint) pairs each joint was scored on.
    """

    thresholds: tuple[float, ...]
    per_joint: np.ndarray
    mean: np.ndarray
    scored: np.ndarray

    def at(self, threshold: float) -> float:
        """The mean PCK at ``threshold`` (one of :attr:`thresholds`)."""
        return float(self.mean[self.thresholds.index(threshold)])


def normalised_errors(
    predicted: np.ndarray, truth: np.ndarray, conventions: PCKConventions = PCKConventions()
) -> np.ndarray:
    """Per frame and joint: distance to the truth over the frame's normaliser.

    Args:
        predicted: float ``[T, J, 2]`` predicted ``(x, y)`` in frame pixels; NaN where a joint has no position.
        truth: float ``[T, J, 2]`` ground-truth ``(x, y)`` in the same pixels.
        conventions: the normaliser scale, whether frame 0 is scored, which joints are scored.

    Returns:
        float64 ``[T, J]``: the normalised error; NaN where the joint is not scored (frame 0, or no
        predicted position under ``visible="predicted"``); ``inf`` where it is scored but cannot be
        right (no position under ``visible="all"``, or a zero normaliser).

    Raises:
        ValueError: the shapes differ or are not ``[T, J, 2]``.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if predicted.shape != truth.shape or predicted.ndim != 3 or predicted.shape[2] != 2:
        raise ValueError(f"predicted {predicted.shape} and truth {truth.shape} must both be [T, J, 2]")
    has_position = np.isfinite(predicted).all(axis=2)  # [T, J]
    scored = has_position.copy() if conventions.visible == "predicted" else np.ones_like(has_position)
    if conventions.skip_first and len(scored):
        scored[0] = False
    box_joints = np.where(scored[..., None], truth, np.nan)
    with np.errstate(invalid="ignore"):
        low, high = np.nanmin(box_joints, axis=1, initial=np.inf), np.nanmax(box_joints, axis=1, initial=-np.inf)
    normaliser = conventions.box_scale * np.linalg.norm(high - low, axis=1)  # [T]; inf/nan without joints
    distance = np.linalg.norm(predicted - truth, axis=2)  # [T, J]; NaN without a position
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = distance / normaliser[:, None]
    errors = np.where(np.isfinite(errors), errors, np.inf)  # no position, or a zero normaliser: a miss
    return np.where(scored, errors, np.nan)


def pck(errors: Sequence[np.ndarray], thresholds: Sequence[float]) -> PCKScores:
    """PCK per joint and its mean over joints, from the normalised errors of every video.

    Args:
        errors: one float ``[T, J]`` array per video (:func:`normalised_errors`; NaN = not scored).
        thresholds: correct when ``error <= threshold``.

    Returns:
        The scores; a joint scored nowhere has NaN PCK and is left out of the mean.
    """
    thresholds = tuple(float(t) for t in thresholds)
    if not errors:
        raise ValueError("no videos to score")
    joints = errors[0].shape[1]
    if any(e.ndim != 2 or e.shape[1] != joints for e in errors):
        raise ValueError(f"every video must have [T, {joints}] errors, got {[e.shape for e in errors]}")
    stacked = np.concatenate([np.asarray(e, dtype=np.float64) for e in errors], axis=0)  # [frames, J]
    scored = (~np.isnan(stacked)).sum(axis=0)
    per_joint = np.full((len(thresholds), joints), np.nan)
    for k, threshold in enumerate(thresholds):
        correct = (stacked <= threshold).sum(axis=0)  # NaN compares False
        per_joint[k] = np.where(scored > 0, correct / np.maximum(scored, 1), np.nan)
    with np.errstate(invalid="ignore"):
        mean = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in per_joint])
    return PCKScores(thresholds, per_joint, mean, scored.astype(np.int64))
