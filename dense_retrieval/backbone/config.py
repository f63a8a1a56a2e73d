"""What a backbone is and how images become its features, as plain settings (no torch imported).

:class:`BackboneConfig` names the network, layer, output stride and weights; :class:`FeatureConfig` says
how images are resized and what happens to the features. Both are frozen and checked on creation;
protocol presets (:mod:`dense_retrieval.protocols`) and CLI options fill them in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError
from .specs import DEFAULT_ARCHITECTURE

INTERPOLATIONS = ("bicubic", "bilinear")
_RESIZE_PATTERN = re.compile(r"^(native|short:(\d+)|fixed:(\d+)x(\d+))$")


@dataclass(frozen=True)
class BackboneConfig:
    """Which network, which layer, which output stride, which weights.

    Attributes:
        name: an architecture of :data:`~.specs.ARCHITECTURES` ("resnet18", "resnet50", "mobilenet_v2").
        layer: layer name ("layer3" = "res4" for ResNets; "features.N" for MobileNetV2);
            None takes the backbone's default (ResNets: layer3, MobileNetV2: features.13).
        output_stride: 8, 16 or 32; None keeps the layer's natural stride.
        stride_mode: "remove" (CRW: strides set to 1, no dilation) or "dilate" (DeepLab).
        weights: "default" (the registry's default for the architecture), "random" or "random:SEED"
            (explicit, reproducible random initialisation; seed 0 by default), a registry name
            (see ``dense-retrieval checkpoints list``) or a checkpoint path.
    """

    name: str = DEFAULT_ARCHITECTURE
    layer: str | None = None
    output_stride: int | None = None
    stride_mode: str = "remove"
    weights: str = "default"



@dataclass(frozen=True)
class FeatureConfig:
    """How images become network inputs and what happens to the output.

    Attributes:
        resize: "native" (as is: CRW's 480p protocol), "short:N" (short side N, aspect kept) or
            "fixed:HxW" (e.g. "fixed:512x512", MaskContrast's VOC protocol).
        interpolation: image resampling when resizing, "bicubic" (MaskContrast) or "bilinear".
        l2_normalize: L2-normalise every feature vector over channels (CRW does).
        batch_size: images per forward pass (consecutive images of equal size are batched).
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N".
        amp: autocast to half precision on CUDA (ignored on CPU, where extraction is deterministic fp32).
    """

    resize: str = "native"
    interpolation: str = "bicubic"
    l2_normalize: bool = False
    batch_size: int = 4
    device: str = "auto"
    amp: bool = True

    def __post_init__(self) -> None:
        if not _RESIZE_PATTERN.match(self.resize):
            raise InputError(
                f"resize policy {self.resize!r} not understood", hint="use native, short:480 or fixed:512x512"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation {self.interpolation!r} not supported", hint="use bicubic or bilinear")
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}")
        match = _RESIZE_PATTERN.match(self.resize)
        sizes = [int(v) for v in match.groups()[1:] if v is not None]
        if any(v < 1 for v in sizes):
            raise InputError(f"resize policy {self.resize!r} asks for an empty image", hint="use sizes of 1 or more")
        if match.group(3):
            _check_budget(int(match.group(3)), int(match.group(4)), self.resize)
        elif match.group(2):
            _check_budget(int(match.group(2)), int(match.group(2)), self.resize)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) fed to the network for an image of ``height`` x ``width`` (within the pixel budget)."""
        match = _RESIZE_PATTERN.match(self.resize)
        assert match is not None  # validated in __post_init__
        if match.group(2):
            short = int(match.group(2))
            scale = short / min(height, width)
            size = (short, max(1, round(width * scale))) if height <= width else (max(1, round(height * scale)), short)
            _check_budget(size[0], size[1], f"{self.resize} of a {height}x{width} image")
            return size
        if match.group(3):
            return int(match.group(3)), int(match.group(4))
        return height, width


def _check_budget(height: int, width: int, what: str) -> None:
    from ..data.images import pixel_budget

    if height * width > pixel_budget():
        raise InputError(
            f"resize {what} makes {height}x{width} = {height * width:,} pixels, over the budget of "
            f"{pixel_budget():,} pixels",
            hint="choose a smaller size, or raise the budget with DENSE_RETRIEVAL_MAX_PIXELS",
        )
