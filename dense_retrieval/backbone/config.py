"""What a backbone is and how images become its features, as plain settings (no torch imported).

:class:`BackboneConfig` names the network, layer, output stride and weights; :class:`FeatureConfig` says
how images are resized and what happens to the features. Both are frozen and checked on creation;
protocol presets (:mod:`dense_retrieval.protocols`) and CLI options fill them in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError
from .preprocessing import get_preprocessing
from .specs import DEFAULT_ARCHITECTURE

_RESIZE_PATTERN = re.compile(r"^(native|short:(\d+)(?:/(\d+))?|fixed:(\d+)x(\d+))$")


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
        resize: "native" (as is: CRW's 480p protocol), "short:N" (short side N, aspect kept),
            "short:N/M" (short side N, long side scaled and floored to a multiple of M: DINO's video
            protocol is "short:480/64") or "fixed:HxW" (e.g. "fixed:512x512", MaskContrast's VOC protocol).
            A ViT additionally needs both sides to be a multiple of its patch size: see :meth:`input_size`.
        preprocess: the name of the recipe that turns a file into the network input (decoder, resize
            library and filter, rounding, mean/std: :mod:`.preprocessing`); each protocol names its
            reference's ("crw", "dino", "maskcontrast", ...); "pil-bicubic" is the toolkit's own.
        l2_normalize: L2-normalise every feature vector over channels (CRW does).
        batch_size: images per forward pass (consecutive images of equal size are batched).
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N".
        amp: autocast to half precision on CUDA (ignored on CPU, where extraction is deterministic fp32).
    """

    resize: str = "native"
    preprocess: str = "pil-bicubic"
    l2_normalize: bool = False
    batch_size: int = 4
    device: str = "auto"
    amp: bool = True

    def __post_init__(self) -> None:
        if not _RESIZE_PATTERN.match(self.resize):
            raise InputError(
                f"resize policy {self.resize!r} not understood",
                hint="use native, short:480, short:480/64 or fixed:512x512",
            )
        get_preprocessing(self.preprocess)  # an unknown recipe fails here, naming the known ones
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}")
        match = _RESIZE_PATTERN.match(self.resize)
        sizes = [int(v) for v in match.groups()[1:] if v is not None]
        if any(v < 1 for v in sizes):
            raise InputError(f"resize policy {self.resize!r} asks for an empty image", hint="use sizes of 1 or more")
        if match.group(4):
            _check_budget(int(match.group(4)), int(match.group(5)), self.resize)
        elif match.group(2):
            _check_budget(int(match.group(2)), int(match.group(2)), self.resize)

    def input_size(self, height: int, width: int, multiple: int = 1) -> tuple[int, int]:
        """The (H, W) fed to the network for an image of ``height`` x ``width``.

        Args:
            height, width: the image size.
            multiple: both sides are then floored to a multiple of this (at least one multiple): a ViT's
                patch size, so that its token map covers the whole input (16 and 8 leave DINO's
                480 x (multiple of 64) untouched; /14 turns 480x854 into 476x854). 1 for CNNs.
        """
        match = _RESIZE_PATTERN.match(self.resize)
        assert match is not None  # validated in __post_init__
        if match.group(2):
            short, floor_to = int(match.group(2)), int(match.group(3) or 0)
            long_side = max(height, width) * short / min(height, width)
            # DINO (eval_video_segmentation.read_frame): int((long // 64) * 64); otherwise rounded
            long_side = int(long_side // floor_to * floor_to) if floor_to else round(long_side)
            size = (short, long_side) if height <= width else (long_side, short)
        elif match.group(4):
            size = int(match.group(4)), int(match.group(5))
        else:
            size = height, width
        if multiple > 1:
            size = tuple(max(multiple, side // multiple * multiple) for side in size)
        _check_budget(size[0], size[1], f"{self.resize} of a {height}x{width} image")
        return size


def _check_budget(height: int, width: int, what: str) -> None:
    from ..data.images import pixel_budget

    if height * width > pixel_budget():
        raise InputError(
            f"resize {what} makes {height}x{width} = {height * width:,} pixels, over the budget of "
            f"{pixel_budget():,} pixels",
            hint="choose a smaller size, or raise the budget with DENSE_RETRIEVAL_MAX_PIXELS",
        )
