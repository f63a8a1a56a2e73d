"""Batched dense feature extraction: RGB images or frames -> feature maps (NCHW + stride).

The one feature contract of the toolkit (house rule 2): :class:`FeatureMaps` holds float
``[N, C, h, w]`` features and the stride they were taken at, with ``h = ceil(H / stride)`` for a
network input of height ``H``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .backbones import DenseBackbone
from .errors import InputError
from .progress import track

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RESIZE_PATTERN = re.compile(r"^(native|short:(\d+)|fixed:(\d+)x(\d+))$")
_INTERPOLATIONS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


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
        if self.interpolation not in _INTERPOLATIONS:
            raise InputError(f"interpolation {self.interpolation!r} not supported", hint="use bicubic or bilinear")
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}")

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) fed to the network for an image of ``height`` x ``width``."""
        match = _RESIZE_PATTERN.match(self.resize)
        assert match is not None  # validated in __post_init__
        if match.group(2):
            short = int(match.group(2))
            scale = short / min(height, width)
            return (short, round(width * scale)) if height <= width else (round(height * scale), short)
        if match.group(3):
            return int(match.group(3)), int(match.group(4))
        return height, width


@dataclass
class FeatureMaps:
    """Dense features of a batch of images.

    Attributes:
        features: float [N, C, h, w].
        stride: input pixels per feature cell; h = ceil(H / stride).
        input_size: (H, W) of the network input.
    """

    features: torch.Tensor
    stride: int
    input_size: tuple[int, int]


def resolve_device(device: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; anything else must be a valid, available torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device {device!r}", hint="use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available", hint="use --device cpu")
    return resolved


class FeatureExtractor:
    """Turns uint8 RGB images into dense features with one backbone and one :class:`FeatureConfig`."""

    def __init__(self, backbone: DenseBackbone, config: FeatureConfig | None = None):
        self.config = config or FeatureConfig()
        self.device = resolve_device(self.config.device)
        self.backbone = backbone.to(self.device)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1) * 255.0

    @property
    def stride(self) -> int:
        return self.backbone.stride

    @property
    def channels(self) -> int:
        return self.backbone.channels

    def describe(self) -> dict:
        """Backbone and feature configuration: what made these features (house rule 4)."""
        return {"backbone": self.backbone.describe(), "features": asdict(self.config)}

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Feature-map size (h, w) for an image of ``height`` x ``width``."""
        in_h, in_w = self.config.input_size(height, width)
        return -(-in_h // self.stride), -(-in_w // self.stride)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Resize one uint8 [H, W, 3] RGB image to the network input size (no-op when native)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"expected a uint8 [H, W, 3] RGB image, got {image.dtype} {image.shape}")
        size = self.config.input_size(*image.shape[:2])
        if size == image.shape[:2]:
            return image
        resized = Image.fromarray(image).resize((size[1], size[0]), _INTERPOLATIONS[self.config.interpolation])
        return np.asarray(resized)

    @torch.inference_mode()
    def forward_batch(self, images: list[np.ndarray]) -> torch.Tensor:
        """Prepared uint8 images of one size -> float32 features [N, C, h, w] on the extractor's device."""
        # NHWC uint8 -> channels-last float: no transpose copy, and oneDNN/cuDNN convs run faster on it
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float()
        batch = ((batch - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast(self.device.type, dtype=torch.float16)
            if self.config.amp and self.device.type == "cuda"
            else nullcontext()
        )
        with autocast:
            features = self.backbone(batch)
        features = features.float()
        if self.config.l2_normalize:
            features = F.normalize(features, dim=1)
        return features

    def extract(self, images: list[np.ndarray]) -> FeatureMaps:
        """Features of images that share one size: uint8 [H, W, 3] each -> FeatureMaps [N, C, h, w] (CPU)."""
        if not images:
            raise InputError("no images to extract features from")
        features = torch.cat(list(self._batches(images, desc="")), dim=0)
        input_size = self.config.input_size(*images[0].shape[:2])
        return FeatureMaps(features, self.stride, input_size)

    def iter_features(
        self,
        images: Iterable[np.ndarray],
        total: int | None = None,
        desc: str = "features",
        keep_on_device: bool = False,
    ) -> Iterator[torch.Tensor]:
        """Stream features: one float [C, h, w] per image, in order, batched internally.

        Memory stays bounded by one batch, whatever the number of images (videos stream through).
        Features are moved to the CPU unless ``keep_on_device``.
        """
        for batch in self._batches(images, total=total, desc=desc, keep_on_device=keep_on_device):
            yield from batch

    def _batches(
        self, images: Iterable[np.ndarray], total: int | None = None, desc: str = "", keep_on_device: bool = False
    ) -> Iterator[torch.Tensor]:
        pending: list[np.ndarray] = []
        for image in track(images, total=total, desc=desc or "features", unit="img"):
            prepared = self.prepare(image)
            if pending and (prepared.shape != pending[0].shape or len(pending) == self.config.batch_size):
                yield self._finish(pending, keep_on_device)
                pending = []
            pending.append(prepared)
        if pending:
            yield self._finish(pending, keep_on_device)

    def _finish(self, images: list[np.ndarray], keep_on_device: bool) -> torch.Tensor:
        features = self.forward_batch(images)
        return features if keep_on_device else features.cpu()
