"""Settings of dense nearest-neighbour retrieval (the Hummingbird protocol), without torch.

:class:`DenseTransforms` says how an image and its label map become a network input (the memory's
augmentation and the validation resize); :class:`DenseProtocol` says how the memory is sampled and read.
The values of the published protocol live in one place, the ``HUMMINGBIRD`` preset of
:mod:`dense_retrieval.protocols`; CLI options override single fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

from ...errors import InputError

MATCHINGS: tuple[str, ...] = ("hungarian", "none")
"""How predicted classes meet true ones before the IoU: one-to-one Hungarian matching on IoU (the
reproduction's ``PredsmIoU``, which its published numbers use), or the predicted ids as they are."""
LABEL_DTYPES: tuple[str, ...] = ("float16", "uint8")
"""How the memory stores a patch's soft label: float16 (exact for patches of 8 or 16 pixels: k / 256), or
uint8 quantised to 1/255 steps (half the bytes)."""
PROTOCOL_INPUT = 512
"""The protocol's input side: 512 for /16 and /8 models, 504 for /14 (the largest multiple of the stride)."""


@dataclass(frozen=True)
class DenseTransforms:
    """How an image and its labels become the network input (Hummingbird's ``get_hbird_*_transforms``).

    Memory images (``augment``): one random resized crop shared by image and labels (scale
    ``crop_scale`` of the image area, aspect ``crop_ratio``; torchvision's ``RandomResizedCrop``
    parameters), the image resampled bilinearly, the labels by nearest neighbour; then brightness,
    contrast, saturation and hue jitter of ``jitter`` each, each applied with probability
    ``jitter_probability``. Validation images (and the memory of ``augmentation_epochs=0``): both sides
    resized to input x input (image bilinear with antialias, labels nearest). The labels' nearest rule
    is torch's (``interpolate(mode="nearest")``, as torchvision does for tensors), not PIL's.

    Attributes:
        crop_scale: (min, max) fraction of the image area a memory crop covers.
        crop_ratio: (min, max) aspect ratio of a memory crop.
        jitter: (brightness, contrast, saturation, hue) strengths.
        jitter_probability: probability of each of the four jitters, independently.

    The validation resize and the input's normalisation (the reproduction's std, or ImageNet's) are the
    feature side's preprocessing recipe (``hummingbird``: :mod:`dense_retrieval.backbone.preprocessing`).
    """

    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    jitter: tuple[float, float, float, float]
    jitter_probability: float

    def __post_init__(self) -> None:
        if not 0 < self.crop_scale[0] <= self.crop_scale[1]:
            raise InputError(f"crop scale {self.crop_scale} must be 0 < min <= max")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise InputError(f"crop ratio {self.crop_ratio} must be 0 < min <= max")
        if not 0 <= self.jitter_probability <= 1:
            raise InputError(f"jitter probability {self.jitter_probability} must lie in [0, 1]")

    def replace(self, **changes: object) -> DenseTransforms:
        return replace(self, **changes)


@dataclass(frozen=True)
class DenseProtocol:
    """Dense nearest-neighbour retrieval (Balazevic et al., NeurIPS 2023; open-hummingbird-eval).

    Attributes:
        transforms: how images become inputs (:class:`DenseTransforms`).
        memory_size: patches the memory holds at most (the paper's 1024 x 10^2, 10^3, 10^4); None keeps
            every patch. Each image-pass gives ``memory_size // (images x passes)`` patches (at least 1),
            the rarest classes first (:func:`~.patches.bounded_sample`).
        augmentation_epochs: augmented passes over the memory images; 0 builds the memory once with the
            validation transform (deterministic: for exact comparisons).
        neighbours: memory patches each query patch reads (k).
        temperature: softmax temperature over the neighbours' cosine similarities.
        input_size: network input side; None: the largest multiple of the feature stride not above 512
            (512 for /16, /8 and stride-16 CNNs, 504 for /14).
        matching: ``"hungarian"`` (the reproduction's published numbers) or ``"none"``.
        seed: every random draw (crops, jitter, sampling noise) derives from (seed, pass, image).
        label_dtype: how soft labels are stored (:data:`LABEL_DTYPES`).
        query_batch: query patches searched at once (speed and memory only).
    """

    transforms: DenseTransforms
    memory_size: int | None = 1024 * 10**4
    augmentation_epochs: int = 2
    neighbours: int = 30
    temperature: float = 0.02
    input_size: int | None = None
    matching: Literal["hungarian", "none"] = "hungarian"
    seed: int = 0
    label_dtype: str = "float16"
    query_batch: int = 4096

    def __post_init__(self) -> None:
        if self.memory_size is not None and self.memory_size < 1:
            raise InputError(f"memory size must be at least 1 patch, got {self.memory_size}", hint="or 'all'")
        if self.augmentation_epochs < 0:
            raise InputError(f"augmentation epochs must be >= 0, got {self.augmentation_epochs}")
        if self.neighbours < 1:
            raise InputError(f"neighbours must be at least 1, got {self.neighbours}")
        if not self.temperature > 0:
            raise InputError(f"temperature must be positive, got {self.temperature}")
        if self.input_size is not None and self.input_size < 16:
            raise InputError(f"input size must be at least 16 pixels, got {self.input_size}")
        if self.matching not in MATCHINGS:
            raise InputError(f"unknown matching {self.matching!r}", hint=f"use one of {', '.join(MATCHINGS)}")
        if self.label_dtype not in LABEL_DTYPES:
            raise InputError(f"unknown label dtype {self.label_dtype!r}", hint=f"use one of {', '.join(LABEL_DTYPES)}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")
        if self.query_batch < 1:
            raise InputError(f"query batch must be at least 1, got {self.query_batch}")

    def replace(self, **changes: object) -> DenseProtocol:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    @property
    def passes(self) -> int:
        """Passes over the memory images: the augmentation epochs, or one validation-transform pass."""
        return max(1, self.augmentation_epochs)

    def input_for(self, stride: int) -> int:
        """The network input side for features of ``stride`` (patch size): :attr:`input_size`, else the rule."""
        size = self.input_size or PROTOCOL_INPUT // stride * stride
        if size % stride:
            raise InputError(
                f"input size {size} is not a multiple of the feature stride {stride}",
                hint=f"use --input-size {size // stride * stride} or {(size // stride + 1) * stride}",
            )
        return size

    def per_image(self, images: int, grid_cells: int) -> int:
        """Patches kept per image-pass: ``memory_size // (images x passes)``, at least 1, at most the grid."""
        if self.memory_size is None:
            return grid_cells
        return min(grid_cells, max(1, self.memory_size // max(1, images * self.passes)))

    def memory_settings(self) -> dict:
        """The settings that make the memory (what it holds), as recorded: not the query-side ones."""
        return {
            "transforms": asdict(self.transforms),
            "memory_size": self.memory_size,
            "augmentation_epochs": self.augmentation_epochs,
            "seed": self.seed,
            "label_dtype": self.label_dtype,
        }

    def query_settings(self) -> dict:
        """The settings of reading the memory (what a kept memory can be reused with, changed)."""
        return {"neighbours": self.neighbours, "temperature": self.temperature, "matching": self.matching}
