"""Batched dense feature extraction: RGB images or frames -> feature maps (NCHW + stride).

The one feature contract of the toolkit (docs/architecture.md, house rule 2): :class:`FeatureMaps` holds
float ``[N, C, h, w]`` features and the stride they were taken at, with ``h = ceil(H / stride)`` for a
network input of height ``H``. :meth:`FeatureExtractor.stream` is the one way to run many inputs
through a backbone: it pairs every input with its :class:`FeatureMaps`, batching internally.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..progress import track
from .config import BackboneConfig, FeatureConfig
from .graph import GraphNetwork, graph_applies
from .networks import DenseBackbone, build_backbone
from .preprocessing import Preprocessing, get_preprocessing

T = TypeVar("T")


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

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the feature maps."""
        return int(self.features.shape[2]), int(self.features.shape[3])

    def single(self) -> torch.Tensor:
        """The one map of a single-image FeatureMaps: float [C, h, w]."""
        if self.features.shape[0] != 1:
            raise InputError(f"expected the features of one image, got {self.features.shape[0]}")
        return self.features[0]


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
    """Turns uint8 RGB images into dense features with one backbone and one :class:`FeatureConfig`.

    Images reach it decoded (``read_image(path, extractor.preprocessing.decode)``); :meth:`prepare` resizes
    them and :meth:`network_input` normalises them as the configured recipe says (:mod:`.preprocessing`).
    """

    def __init__(self, backbone: DenseBackbone, config: FeatureConfig | None = None):
        self.config = config or FeatureConfig()
        self.preprocessing: Preprocessing = get_preprocessing(self.config.preprocess)
        self.device = resolve_device(self.config.device)
        # batch-norm folded, channels-last weights: the same features up to float rounding, less work
        self.backbone = backbone.for_inference().to(self.device)
        self._network: DenseBackbone | GraphNetwork = self.backbone
        self._mean = torch.tensor(self.preprocessing.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.preprocessing.std, device=self.device).view(1, 3, 1, 1)

    def fuse_for_video(self) -> None:
        """Run a CNN on the CPU as fused oneDNN Graph partitions from now on (:mod:`.graph`): the same features
        to float rounding, about twice as fast where input shapes repeat (the frames of a video), two extra
        forwards per new shape. No effect on a GPU, under autocast or for a vision transformer."""
        if self._network is self.backbone and graph_applies(self.backbone, self.device, autocast=False):
            self._network = GraphNetwork(self.backbone)

    @classmethod
    def build(cls, backbone: BackboneConfig, config: FeatureConfig | None = None) -> FeatureExtractor:
        """Build the backbone described by ``backbone`` (weights loaded) and wrap it."""
        return cls(build_backbone(backbone), config)

    @property
    def stride(self) -> int:
        return self.backbone.stride

    @property
    def channels(self) -> int:
        return self.backbone.channels

    def describe(self) -> dict:
        """Backbone and feature configuration: what made these features (docs/architecture.md, house rule 4).

        ``features.preprocess`` holds the whole recipe (:meth:`Preprocessing.record`), not only its name.
        """
        features = {**asdict(self.config), "preprocess": self.preprocessing.record()}
        return {"backbone": self.backbone.describe(), "features": features}

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The network input (H, W) for an image of ``height`` x ``width``: the resize policy, then (ViTs)
        both sides floored to a multiple of the patch size."""
        return self.config.input_size(height, width, self.backbone.input_multiple)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Feature-map size (h, w) for an image of ``height`` x ``width``."""
        in_h, in_w = self.input_size(height, width)
        return -(-in_h // self.stride), -(-in_w // self.stride)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Resize one uint8 [H, W, 3] RGB image to the network input size by the recipe (no-op when native).

        A float32 [H, W, 3] image in [0, 1] (one resampled by a protocol's own transforms, such as the
        Hummingbird memory's crops) is taken as it is when it already has the input size.

        Returns:
            uint8 [H', W', 3], or float32 [H', W', 3] in [0, 1] for a recipe that resizes the /255 image.
        """
        floating = image.dtype == np.float32
        if image.ndim != 3 or image.shape[2] != 3 or not (image.dtype == np.uint8 or floating):
            raise InputError(f"expected a uint8 [H, W, 3] RGB image, got {image.dtype} {image.shape}")
        size = self.input_size(*image.shape[:2])
        if size == image.shape[:2]:
            return image
        if floating:
            raise InputError(f"a float image of {image.shape[:2]} is not the network input size {size}")
        return self.preprocessing.resize(image, size)

    def network_input(self, images: list[np.ndarray]) -> torch.Tensor:
        """Prepared images of one size and dtype -> the normalised float32 RGB input [N, 3, H, W] (channels-last).

        uint8 images are divided by 255 here (float32), float ones arrive in [0, 1]; then ``(x - mean) / std``
        with the recipe's constants, as the reference scripts compute it.
        """
        # NHWC -> channels-last NCHW: no transpose copy, and oneDNN/cuDNN convs run faster on it
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2)
        batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
        return ((batch - self._mean) / self._std).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def forward_batch(self, images: list[np.ndarray]) -> torch.Tensor:
        """Prepared images of one size -> float32 features [N, C, h, w] on the extractor's device."""
        batch = self.network_input(images)
        autocast = (
            torch.autocast(self.device.type, dtype=torch.float16)
            if self.config.amp and self.device.type == "cuda"
            else nullcontext()
        )
        with autocast:
            features = self._network(batch)
        features = features.float()
        if self.config.l2_normalize:
            features = F.normalize(features, dim=1)
        return features

    def extract(self, images: list[np.ndarray]) -> FeatureMaps:
        """Features of images that share one size: uint8 [H, W, 3] each -> FeatureMaps [N, C, h, w] (CPU)."""
        if not images:
            raise InputError("no images to extract features from")
        features = torch.cat([maps.features for _, maps in self.stream(images, desc="")], dim=0)
        input_size = self.input_size(*images[0].shape[:2])
        return FeatureMaps(features, self.stride, input_size)

    def stream(
        self,
        inputs: Iterable[T],
        image_of: Callable[[T], np.ndarray] | None = None,
        total: int | None = None,
        desc: str = "features",
        keep_on_device: bool = False,
    ) -> Iterator[tuple[T, FeatureMaps]]:
        """Pair every input with its features, in order, batching consecutive images of one size.

        Args:
            inputs: anything that carries an image: the images themselves (uint8 [H, W, 3]), or records
                that hold one (a frame, a path with its decoded image and labels, ...). Consumed lazily.
            image_of: picks the uint8 [H, W, 3] RGB image of an input; default: the input is the image.
            total: number of inputs, for the progress bar.
            desc: progress bar label ("" for none beyond the default).
            keep_on_device: leave the features on the extractor's device (default: moved to the CPU).

        Yields:
            ``(input, FeatureMaps)`` with features float [1, C, h, w]. At most one batch of inputs waits
            for its features, whatever the number of inputs (videos stream through).
        """
        image_of = image_of or (lambda item: item)
        waiting: deque[tuple[T, tuple[int, int]]] = deque()
        prepared: list[np.ndarray] = []

        def flush() -> Iterator[tuple[T, FeatureMaps]]:
            features = self.forward_batch(prepared)
            features = features if keep_on_device else features.cpu()
            prepared.clear()
            for row in features:
                item, input_size = waiting.popleft()
                yield item, FeatureMaps(row[None], self.stride, input_size)

        for item in track(inputs, total=total, desc=desc or "features", unit="img"):
            image = self.prepare(image_of(item))
            full = len(prepared) == self.config.batch_size
            if prepared and (full or image.shape != prepared[0].shape or image.dtype != prepared[0].dtype):
                yield from flush()
            prepared.append(image)
            waiting.append((item, tuple(image.shape[:2])))
        if prepared:
            yield from flush()
