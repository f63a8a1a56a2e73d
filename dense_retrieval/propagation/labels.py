"""Label maps between frame resolution (integer ids) and the feature grid (soft one-hot maps)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..labels import VOID


def count_labels(labels: np.ndarray | torch.Tensor) -> int:
    """Number of label channels for an integer map: its largest id plus one (void 255 excluded)."""
    labels = _as_long(labels)
    valid = labels[labels != VOID]
    return int(valid.max()) + 1 if valid.numel() else 1


def labels_to_grid(
    labels: np.ndarray | torch.Tensor, num_labels: int, size: tuple[int, int], mode: str = "bilinear"
) -> torch.Tensor:
    """One-hot encode an integer label map and resize it to the feature grid.

    Args:
        labels: integer ``[H, W]`` ids in ``0 .. num_labels - 1``; void (255) counts as background 0.
        num_labels: channels of the result (background included).
        size: the feature grid ``(h, w)``.
        mode: ``"bilinear"`` (CRW: half-pixel centres, no antialiasing, like OpenCV's INTER_LINEAR) or
            ``"nearest"`` (the pixel nearest each cell centre, like PIL's NEAREST as DINO uses).

    Returns:
        float32 ``[num_labels, h, w]``; every cell sums to 1.
    """
    ids = _as_long(labels)
    if ids.dim() != 2:
        raise InputError(f"a label map must be 2-D [H, W], got shape {tuple(ids.shape)}")
    ids = torch.where(ids == VOID, torch.zeros_like(ids), ids)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_labels):
        raise InputError(
            f"label ids must lie in 0..{num_labels - 1}, found {int(ids.min())}..{int(ids.max())}",
            hint="pass num_labels = largest id + 1",
        )
    one_hot = F.one_hot(ids, num_labels).permute(2, 0, 1).float()[None]  # [1, L, H, W]
    if mode == "bilinear":
        grid = F.interpolate(one_hot, size=size, mode="bilinear", align_corners=False, antialias=False)
    elif mode == "nearest":
        grid = F.interpolate(one_hot, size=size, mode="nearest-exact")
    else:
        raise InputError(f"unknown label resize mode {mode!r}", hint="use 'bilinear' or 'nearest'")
    return grid[0].contiguous()


def grid_to_labels(soft: torch.Tensor, size: tuple[int, int], normalize: bool = False) -> torch.Tensor:
    """Upsample soft label maps to the frame and take the argmax.

    Args:
        soft: float ``[L, h, w]`` label distributions on the feature grid.
        size: the frame ``(H, W)``.
        normalize: rescale each channel to ``[0, 1]`` first when its maximum is positive (DINO's
            ``norm_mask``).

    Returns:
        int64 ``[H, W]`` label ids; ties go to the lowest id.
    """
    up = F.interpolate(soft[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    if normalize:
        flat = up.view(up.shape[0], -1)
        low = flat.min(dim=1, keepdim=True).values
        high = (flat - low).max(dim=1, keepdim=True).values
        positive = flat.max(dim=1, keepdim=True).values > 0
        scaled = (flat - low) / torch.where(high > 0, high, torch.ones_like(high))
        up = torch.where(positive, scaled, flat).view_as(up)
    return _argmax_channels(up)


def _argmax_channels(maps: torch.Tensor) -> torch.Tensor:
    """``maps.argmax(dim=0)`` for ``[L, H, W]``, ties to the lowest id, as L elementwise passes: a
    reduction over the outer dimension is about ten times slower on the CPU at frame size."""
    best = maps[0].clone()
    labels = torch.zeros(maps.shape[1:], dtype=torch.long, device=maps.device)
    for channel in range(1, maps.shape[0]):
        better = maps[channel] > best
        torch.maximum(best, maps[channel], out=best)
        labels.masked_fill_(better, channel)
    return labels


def _as_long(labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(labels, torch.Tensor):
        return labels.long()
    return torch.from_numpy(np.array(labels, dtype=np.int64))
