"""Per-object statistics over frames: Mean, Recall and Decay (DAVIS ``db_statistics``).

- Mean: the average over frames (NaN frames ignored).
- Recall: the fraction of frames scoring strictly above a threshold (0.5).
- Decay: mean of the first of ``n_bins`` (4) time bins minus mean of the last one. Bin edges are
  ``round(linspace(1, T, n_bins + 1)) - 1`` and bin ``i`` spans ``values[edge[i] : edge[i + 1] + 1]``
  (neighbouring bins share their edge frame), as in the reference. The reference stores the edges
  as uint8, which wraps past 255 frames and yields NaN or a wrong Decay; here they are int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conventions import DEFAULT_DECAY_BINS, DEFAULT_RECALL_THRESHOLD


@dataclass(frozen=True)
class Statistics:
    """Mean, Recall and Decay of one object's per-frame scores."""

    mean: float
    recall: float
    decay: float


def mean(values: np.ndarray) -> float:
    """Average of ``values`` float [T], ignoring NaN; NaN when nothing is left."""
    values = _as_float(values)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def recall(values: np.ndarray, threshold: float = DEFAULT_RECALL_THRESHOLD) -> float:
    """Fraction of frames with a score strictly above ``threshold`` (NaN frames count as misses)."""
    values = _as_float(values)
    if values.size == 0:
        return float("nan")
    return float(np.count_nonzero(values > threshold) / values.size)


def decay_bin_edges(num_frames: int, n_bins: int = DEFAULT_DECAY_BINS) -> np.ndarray:
    """Bin edges int64 [n_bins + 1] for ``num_frames`` scores (no uint8 wrap-around)."""
    edges = np.round(np.linspace(1, num_frames, n_bins + 1) + 1e-10) - 1
    return edges.astype(np.int64)


def decay(values: np.ndarray, n_bins: int = DEFAULT_DECAY_BINS) -> float:
    """Mean of the first time bin minus mean of the last (positive: the score drops over time)."""
    values = _as_float(values)
    if values.size == 0:
        return float("nan")
    edges = decay_bin_edges(values.size, n_bins)
    first = values[edges[0] : edges[1] + 1]
    last = values[edges[-2] : edges[-1] + 1]
    return mean(first) - mean(last)


def summarize(
    values: np.ndarray,
    recall_threshold: float = DEFAULT_RECALL_THRESHOLD,
    decay_bins: int = DEFAULT_DECAY_BINS,
) -> Statistics:
    """Mean, Recall and Decay of one object's per-frame scores ``values`` float [T]."""
    return Statistics(mean(values), recall(values, recall_threshold), decay(values, decay_bins))


def _as_float(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"per-frame scores must be 1-D [T], got shape {values.shape}")
    return values
