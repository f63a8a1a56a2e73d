"""Settings of the retrieval road, without torch: pooling modes and the VOC retrieval protocol."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ..errors import InputError

PoolingMode = Literal["upsample", "downsample"]
POOLING_MODES: tuple[str, ...] = ("upsample", "downsample")
"""Mask pooling: features upsampled to the mask (MaskContrast) or masks area-downsampled to the grid."""
SALIENCY_WEIGHTS: tuple[str, ...] = ("soft", "binary")
"""How a saliency proposal weights the pooling: its values above the threshold (MaskContrast) or 1 inside."""


@dataclass(frozen=True)
class VocProtocol:
    """Settings of the retrieval protocol; the defaults are MaskContrast's.

    Attributes:
        size: images are resized to size x size (image and labels by the extractor's preprocessing recipe;
            MaskContrast's: OpenCV bicubic and nearest).
        bank_split: split whose masks form the prototype bank.
        query_split: split whose masks are classified and scored.
        top_k: 1 = nearest neighbour (the reference); k > 1 = majority vote of the k nearest
            prototypes (ties: larger summed similarity).
        pooling: ``"upsample"`` (reference) or ``"downsample"``; see :mod:`.pooling`.
        max_images: use only the first N images of each split (quick looks; None = all).
        saliency_weights: ``"soft"`` (the reference: a saliency proposal is pooled with the saliency values
            themselves as weights where they pass the threshold, ``sal * (sal > 0.5)`` in MaskContrast's
            retrieval_utils.py) or ``"binary"`` (weight 1 inside the mask). Binary maps score alike in both.
    """

    size: int = 512
    bank_split: str = "train"
    query_split: str = "val"
    top_k: int = 1
    pooling: str = "upsample"
    max_images: int | None = None
    saliency_weights: str = "soft"

    def __post_init__(self) -> None:
        if self.size < 16:
            raise InputError(f"image size must be at least 16, got {self.size}")
        if self.top_k < 1:
            raise InputError(f"top-k must be at least 1, got {self.top_k}")
        if self.pooling not in POOLING_MODES:
            raise InputError(f"unknown pooling {self.pooling!r}", hint=f"use one of {', '.join(POOLING_MODES)}")
        if self.saliency_weights not in SALIENCY_WEIGHTS:
            raise InputError(
                f"unknown saliency weights {self.saliency_weights!r}", hint=f"use one of {', '.join(SALIENCY_WEIGHTS)}"
            )

    def replace(self, **changes: object) -> VocProtocol:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)
