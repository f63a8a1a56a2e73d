"""Images and label maps as the Hummingbird protocol feeds them to the network (torchvision transforms).

open-hummingbird-eval (``hbird/utils/transforms.py``, ``image_transformations.py``) applies the image's own
transforms first and the shared (image + labels) ones after:

- memory (training) images: brightness, contrast, saturation and hue jitter on the image (each applied
  with its probability), then one ``RandomResizedCrop`` of image and labels: the image resampled
  bilinearly with antialias as a float tensor, the labels by the nearest rule;
- validation images: resized to input x input as the ``hummingbird`` preprocessing recipe does
  (:mod:`dense_retrieval.backbone.preprocessing`: PIL bilinear, labels nearest).

Their image tensor is normalised before the crop; here the crop runs on the [0, 1] float image and the
feature extractor normalises after it with the recipe's mean and std. Resampling is linear with weights
summing to one, so the two orders give the same input up to float rounding. Label maps are resized by the
recipe's nearest rule (``floor(x * scale)``, torch's and OpenCV's: tested against torchvision). The values
(scale, ratio, jitter) are the protocol's (:data:`dense_retrieval.protocols.HUMMINGBIRD`). Random draws come
from torch's generator seeded per (seed, pass, image) inside ``torch.random.fork_rng``: reproducible,
resumable, and the caller's global generator is left as it was (docs/architecture.md, house rule 13).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import ColorJitter, InterpolationMode, RandomApply, RandomResizedCrop
from torchvision.transforms import functional as TF

from ...backbone.preprocessing import Preprocessing
from .config import DenseTransforms

_JITTERS = ("brightness", "contrast", "saturation", "hue")


@dataclass(frozen=True)
class InputSample:
    """One image as the network sees it.

    Attributes:
        image: uint8 [S, S, 3] (validation resize) or float32 [S, S, 3] in [0, 1] (augmented crop).
        labels: uint8 [S, S] class ids at the input size (255 void).
        crop: (top, left, height, width) of the region of the original image the input shows.
    """

    image: np.ndarray
    labels: np.ndarray
    crop: tuple[int, int, int, int]


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that is a function of ``parts`` (e.g. seed, pass, image index, purpose)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def validation_input(rgb: np.ndarray, labels: np.ndarray, size: int, recipe: Preprocessing) -> InputSample:
    """The validation transform: image and labels resized to size x size by the preprocessing ``recipe``.

    Args:
        rgb: uint8 [H, W, 3]. labels: uint8 [H, W] class ids.
    """
    image = recipe.resize(rgb, (size, size))
    return InputSample(image, recipe.resize_labels(labels, (size, size)), (0, 0, rgb.shape[0], rgb.shape[1]))


def memory_input(
    rgb: np.ndarray, labels: np.ndarray, size: int, transforms: DenseTransforms, seed: int, recipe: Preprocessing
) -> InputSample:
    """The memory (training) transform: jitter, then one random resized crop of image and labels.

    Args:
        rgb: uint8 [H, W, 3]. labels: uint8 [H, W] class ids.
        size: the network input side S.
        transforms: the protocol's crop and jitter settings.
        seed: every random draw of this sample comes from it (:func:`derived_seed`).
        recipe: the preprocessing recipe, whose nearest rule resizes the cropped labels.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        picture = Image.fromarray(rgb)
        for name, strength in zip(_JITTERS, transforms.jitter, strict=True):
            picture = RandomApply([ColorJitter(**{name: strength})], p=transforms.jitter_probability)(picture)
        image = torch.from_numpy(np.asarray(picture, dtype=np.float32) / np.float32(255.0)).permute(2, 0, 1)
        top, left, height, width = RandomResizedCrop.get_params(
            image, scale=list(transforms.crop_scale), ratio=list(transforms.crop_ratio)
        )
    image = TF.resized_crop(
        image, top, left, height, width, [size, size], InterpolationMode.BILINEAR, antialias=True
    ).permute(1, 2, 0)
    cropped = recipe.resize_labels(labels[top : top + height, left : left + width], (size, size))
    return InputSample(image.contiguous().numpy(), cropped, (top, left, height, width))
