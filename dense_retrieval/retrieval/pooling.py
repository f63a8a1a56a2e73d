"""Mask pooling: one L2-normalised vector per segment from a dense feature map (pure torch).

MaskContrast (Van Gansbeke et al., ICCV 2021) pools a segment as the mask-weighted mean of the
feature map bilinearly upsampled to the mask resolution, then L2-normalises it. Two modes:

- ``"upsample"`` (the reference): features bilinearly upsampled (``align_corners=False``) to the
  mask size, averaged over each mask. Bilinear upsampling is linear and separable, so the result
  is computed exactly without materialising the upsampled map: with ``Ry [H, h]`` and ``Rx [W, w]``
  the 1-D interpolation matrices, ``sum_p U(f)[c, p] * m[p] = sum_q f[c, q] * (Ry^T m Rx)[q]``.
  Memory is ``K x H x w`` floats instead of ``C x H x W`` (2 GB for 2048-d at 512x512).
- ``"downsample"`` (cheaper, approximate): masks area-averaged onto the feature grid (adaptive
  average pooling), used as soft weights on the grid.

No I/O, no printing (docs/architecture.md, house rule 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from .config import POOLING_MODES, PoolingMode


def pool_masks(
    features: torch.Tensor,
    masks: torch.Tensor,
    mode: PoolingMode = "upsample",
    normalize: bool = True,
) -> torch.Tensor:
    """Mask-weighted mean of ``features`` for every mask, L2-normalised.

    Args:
        features: float [C, h, w], one image's dense feature map (any stride).
        masks: bool [K, H, W] at image resolution (K >= 1; every mask non-empty).
        mode: ``"upsample"`` (bilinear features -> mask size; MaskContrast) or ``"downsample"``
            (masks area-averaged -> feature grid).
        normalize: L2-normalise each pooled vector (cosine retrieval with inner products).

    Returns:
        float32 [K, C] on the device of ``features``.

    Raises:
        InputError: bad shapes, an unknown mode, or an empty mask (named by its index).
    """
    if mode not in POOLING_MODES:
        raise InputError(f"unknown pooling mode {mode!r}", hint=f"use one of {', '.join(POOLING_MODES)}")
    if features.ndim != 3:
        raise InputError(f"features must be [C, h, w], got shape {tuple(features.shape)}")
    if masks.ndim != 3:
        raise InputError(f"masks must be [K, H, W], got shape {tuple(masks.shape)}")
    if masks.shape[0] == 0:
        return features.new_zeros((0, features.shape[0]), dtype=torch.float32)
    features = features.float()
    weights = grid_weights(masks.to(features.device), tuple(features.shape[1:]), mode)  # [K, h, w]
    totals = weights.flatten(1).sum(1)  # [K]
    empty = torch.nonzero(totals <= 0).flatten()
    if empty.numel():
        raise InputError(f"mask {int(empty[0])} is empty", hint="drop empty masks before pooling")
    pooled = weights.flatten(1) @ features.flatten(1).T  # [K, C]
    pooled = pooled / totals[:, None]
    if normalize:
        pooled = F.normalize(pooled, dim=1)
    return pooled


def grid_weights(masks: torch.Tensor, grid: tuple[int, int], mode: PoolingMode = "upsample") -> torch.Tensor:
    """Per-cell weights on the feature grid whose dot product with the features equals mask pooling.

    Args:
        masks: bool or float [K, H, W].
        grid: (h, w) of the feature map.
        mode: see :func:`pool_masks`.

    Returns:
        float32 [K, h, w]. In ``"upsample"`` mode the weights sum to the mask area in pixels;
        in ``"downsample"`` mode to the mask's covered fraction of each cell, summed.
    """
    masks = masks.float()
    h, w = grid
    if mode == "downsample":
        return F.adaptive_avg_pool2d(masks[:, None], (h, w))[:, 0]
    height, width = masks.shape[1:]
    rows = interpolation_matrix(h, height, device=masks.device)  # [H, h]
    cols = interpolation_matrix(w, width, device=masks.device)  # [W, w]
    # (Ry^T M Rx): contract the long axes one at a time, never more than K x H x w.
    return torch.einsum("Hh,kHw->khw", rows, masks @ cols)


def interpolation_matrix(size_in: int, size_out: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The 1-D bilinear (``align_corners=False``) upsampling operator as a matrix.

    ``interpolation_matrix(n, N) @ x`` equals ``F.interpolate`` of the length-``n`` signal ``x`` to
    length ``N`` with ``mode="linear", align_corners=False``.

    Returns:
        float32 [size_out, size_in].
    """
    eye = torch.eye(size_in, dtype=torch.float32, device=device)
    # Interpolating the identity along one axis yields the operator; the other axis keeps its size,
    # for which bilinear interpolation is the identity.
    return F.interpolate(eye[None, None], size=(size_out, size_in), mode="bilinear", align_corners=False)[0, 0]
