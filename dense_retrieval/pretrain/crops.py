"""Constrained multi-crop (Van Gansbeke et al., NeurIPS 2021, Sec. 3.2; the seed's utils/constrained_cropping.py).

One image gives ``large_crops`` large crops and ``small_crops`` small ones. Each box is drawn as
torchvision's ``RandomResizedCrop`` draws it (its ``get_params``). With ``constrained`` set, a small crop
must overlap the key crop (the last large crop) by at least ``min_overlap`` of the small crop's own area:
up to ``tries`` boxes are drawn and the first that satisfies the rule is kept; when none does, one more
unconstrained box is drawn and the crop is counted as a fallback. Boxes are ``(top, left, height,
width)`` in pixels of the source image. Randomness comes from torch's global generator (seeded per
sample by the data source).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as F

from .config import MultiCropConfig

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CropSet:
    """The crops of one image.

    Attributes:
        images: PIL images, large crops first (``large_size`` square), then small ones (``small_size``).
        boxes: the source box ``(top, left, height, width)`` of each crop.
        fallbacks: how many small crops fell back to an unconstrained box.
        constrained: per crop, whether it satisfied the overlap rule (large crops: False).
    """

    images: tuple[Image.Image, ...]
    boxes: tuple[Box, ...]
    fallbacks: int
    constrained: tuple[bool, ...]


def intersection_area(a: Box, b: Box) -> int:
    """Area in pixels shared by two ``(top, left, height, width)`` boxes."""
    height = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    width = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return height * width


def overlaps_enough(box: Box, key: Box, min_overlap: float) -> bool:
    """The constrained-crop rule: ``box`` shares at least ``min_overlap`` of its own area with ``key``."""
    return intersection_area(box, key) >= min_overlap * box[2] * box[3]


class MultiCrop:
    """Cut the crops of one sample from a PIL image; see the module docstring.

    ``MultiCrop(config)(image)`` -> :class:`CropSet`.
    """

    def __init__(self, config: MultiCropConfig):
        self.config = config

    def boxes(self, image: Image.Image) -> tuple[list[Box], int, list[bool]]:
        """Draw the boxes only: (boxes, fallbacks, satisfied-the-rule flags)."""
        config = self.config
        large_scale, small_scale, ratio = list(config.large_scale), list(config.small_scale), list(config.ratio)
        boxes: list[Box] = [RandomResizedCrop.get_params(image, large_scale, ratio) for _ in range(config.large_crops)]
        flags = [False] * config.large_crops
        key = boxes[config.key_index]
        fallbacks = 0
        for _ in range(config.small_crops):
            box = None
            if config.constrained:
                for _attempt in range(config.tries):
                    candidate = RandomResizedCrop.get_params(image, small_scale, ratio)
                    if overlaps_enough(candidate, key, config.min_overlap):
                        box = candidate
                        break
            flags.append(box is not None)
            if box is None:
                box = RandomResizedCrop.get_params(image, small_scale, ratio)
                fallbacks += int(config.constrained)
            boxes.append(box)
        return boxes, fallbacks, flags

    def __call__(self, image: Image.Image) -> CropSet:
        config = self.config
        boxes, fallbacks, flags = self.boxes(image)
        images = []
        for index, box in enumerate(boxes):
            size = config.large_size if index < config.large_crops else config.small_size
            images.append(
                F.resized_crop(image, *box, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
            )
        return CropSet(tuple(images), tuple(boxes), fallbacks, tuple(flags))

    def __repr__(self) -> str:
        return f"MultiCrop({self.config})"
