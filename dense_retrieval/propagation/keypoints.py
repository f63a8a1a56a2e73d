"""Keypoints between frame coordinates and the feature grid: Gaussian label channels, top-k read-out.

CRW's JHMDB protocol (Jabri et al., NeurIPS 2020; ajabri/videowalk ``code/data/jhmdb.py`` and
``code/utils/test_utils.py``), written from its description:

- **Encoding.** Joint ``j`` at frame position ``(x, y)`` sits at grid position ``(x * w / W, y * h / H)``
  (no half-cell offset). Its channel holds an unnormalised Gaussian of ``sigma`` cells (peak 1) on the
  window of ``ceil(6 sigma + 1)`` cells whose corner is ``trunc(position - 3 sigma)`` (rounded toward
  zero, as Python's ``int``), whose end is ``trunc(position + 3 sigma + 1)`` and whose peak lies
  ``floor((6 sigma + 1) / 2)`` cells past the corner: for ``sigma = 0.5`` a 4x4 window peaking at
  ``trunc(p - 1.5) + 2``, the nearest cell for positions past 1.5 cells from the top/left edge (nearer
  the edge the window is cut and the peak moves inward). A joint whose window misses the grid gets an
  empty channel. Channel 0 is the background: 1 where every joint channel is 0.
- **Read-out.** A joint's grid position is the mean of the cell coordinates ``(column, row)`` of its
  ``topk`` (3) highest cells, weighted by their values; a channel that is all zero gives no position
  (NaN here, -1 in CRW's files). Back in the frame: ``(x * W / w, y * H / h)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InputError
from .config import CRW_KEYPOINTS

DEFAULT_SIGMA = CRW_KEYPOINTS.sigma
"""CRW's Gaussian width on the feature grid, in cells."""
DEFAULT_READOUT_TOPK = CRW_KEYPOINTS.readout_topk
"""CRW's ``process_pose``: a joint is the weighted mean of its 3 best cells."""


def frame_to_grid(points: np.ndarray, frame_size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Frame ``(x, y)`` pixels -> grid ``(x, y)`` cells, CRW's scaling: ``x * w / W``, ``y * h / H``.

    Args:
        points: float ``[..., 2]`` as ``(x, y)``, zero-based pixels.
        frame_size: ``(H, W)`` of the frame.
        grid: ``(h, w)`` of the feature grid.
    """
    scale = np.array([grid[1] / frame_size[1], grid[0] / frame_size[0]])
    return np.asarray(points, dtype=np.float64) * scale


def grid_to_frame(points: np.ndarray, frame_size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Grid ``(x, y)`` cells -> frame ``(x, y)`` pixels, the inverse of :func:`frame_to_grid` (NaN stays NaN)."""
    scale = np.array([frame_size[1] / grid[1], frame_size[0] / grid[0]])
    return np.asarray(points, dtype=np.float64) * scale


def gaussian_grid(points: np.ndarray, grid: tuple[int, int], sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """Label channels of keypoints: background first, then one Gaussian per point (see the module docstring).

    Args:
        points: float ``[J, 2]`` grid positions ``(x, y)`` in cells; a non-finite point gets an empty channel.
        grid: ``(h, w)`` of the feature grid.
        sigma: Gaussian width in cells (CRW: 0.5).

    Returns:
        float32 ``[J + 1, h, w]``: channel 0 is 1 where all joint channels are 0, else 0.
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise InputError(f"the keypoint Gaussian sigma must be a positive number of cells, got {sigma}")
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise InputError(f"keypoints must be [J, 2] (x, y), got shape {points.shape}")
    height, width = grid
    span = 6 * sigma + 1
    size = math.ceil(span)
    peak = math.floor(span / 2)
    offsets = np.arange(size, dtype=np.float64) - peak
    window = np.exp(-(offsets[None, :] ** 2 + offsets[:, None] ** 2) / (2 * sigma**2))  # [size (rows), size (cols)]
    maps = np.zeros((len(points) + 1, height, width), dtype=np.float64)
    for joint, (x, y) in enumerate(points, start=1):
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        left, top = int(x - 3 * sigma), int(y - 3 * sigma)  # int(): toward zero, as CRW
        right, bottom = int(x + 3 * sigma + 1), int(y + 3 * sigma + 1)
        if left >= width or top >= height or right < 0 or bottom < 0:
            continue
        cols = slice(max(0, left), min(right, width))  # CRW's window ends at trunc(x + 3 sigma + 1)
        rows = slice(max(0, top), min(bottom, height))
        maps[joint, rows, cols] = window[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
    maps[0] = (maps[1:].sum(axis=0) == 0).astype(np.float64)
    return torch.from_numpy(maps.astype(np.float32))


def read_out(soft: torch.Tensor, topk: int = DEFAULT_READOUT_TOPK) -> np.ndarray:
    """Keypoint grid positions from propagated label channels (background first).

    Args:
        soft: float ``[J + 1, h, w]`` (channel 0 background, ignored).
        topk: cells averaged per joint (CRW: 3).

    Returns:
        float64 ``[J, 2]`` grid positions ``(x, y)``; NaN for a joint whose channel is all zero.
    """
    if topk < 1:
        raise InputError(f"the keypoint read-out needs at least one cell, got topk={topk}")
    joints = soft[1:].detach().float()
    count, height, width = joints.shape
    flat = joints.reshape(count, height * width)
    values, index = torch.topk(flat, min(topk, height * width), dim=1)
    total = values.sum(dim=1, keepdim=True)
    weights = values / torch.where(total > 0, total, torch.ones_like(total))
    columns, rows = (index % width).to(weights.dtype), torch.div(index, width, rounding_mode="floor").to(weights.dtype)
    positions = torch.stack([(columns * weights).sum(dim=1), (rows * weights).sum(dim=1)], dim=1).double()
    positions[flat.sum(dim=1) == 0] = float("nan")
    return positions.cpu().numpy()
