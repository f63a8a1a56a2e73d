"""Per-crop augmentations, all from torchvision (house rule: use the library for what it does).

MoCo v2 (Chen et al. 2020, facebookresearch/moco ``--aug-plus``): colour jitter (0.4, 0.4, 0.4, 0.1)
with p 0.8, grayscale with p 0.2, Gaussian blur with sigma in [0.1, 2.0] and p 0.5, horizontal flip.
"Ours" (Van Gansbeke et al. 2021): on the chosen crops (every crop but the key) a 50/50 choice between
[horizontal flip + AutoAugment, ImageNet policy] and the MoCo v2 augmentations. Every crop then becomes a
tensor normalised with the ImageNet mean and std.

One difference from the seed repository: it blurs with PIL's ``GaussianBlur(radius=sigma)`` (no kernel
limit); torchvision's ``GaussianBlur`` needs a kernel size, taken as SimCLR's 10% of the crop side, odd
(23 px at 224, 17 at 160, 9 at 96, 3 below 40). Randomness: torch's global generator, plus Python's
``random`` inside ``RandomChoice`` (both seeded per sample by the data source).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torchvision import transforms as T

from ..backbone.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from .config import PretrainConfig

BLUR_SIGMA = (0.1, 2.0)


def blur_kernel_size(size: int) -> int:
    """SimCLR's blur kernel for a ``size`` px crop: 10% of the side, made odd, at least 3."""
    return max(3, int(0.1 * size) // 2 * 2 + 1)


def moco_v2_augmentations(size: int) -> T.Compose:
    """MoCo v2's photometric augmentations and flip for a ``size`` px crop (PIL in, PIL out)."""
    return T.Compose(
        [
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(blur_kernel_size(size), sigma=BLUR_SIGMA)], p=0.5),
            T.RandomHorizontalFlip(),
        ]
    )


def auto_augment_branch() -> T.Compose:
    """The paper's AutoAugment branch: horizontal flip, then torchvision's ImageNet AutoAugment policy."""
    return T.Compose([T.RandomHorizontalFlip(), T.AutoAugment(T.AutoAugmentPolicy.IMAGENET)])


def crop_transform(size: int, auto_augment: bool) -> T.Compose:
    """PIL crop -> float ``[3, size, size]`` normalised tensor.

    Args:
        size: the crop side (chooses the blur kernel).
        auto_augment: 50/50 between the AutoAugment branch and MoCo v2's (the paper's non-key crops);
            False: MoCo v2's only (the key crop, and every crop of MoCo v2).
    """
    augment = T.RandomChoice([auto_augment_branch(), moco_v2_augmentations(size)]) if auto_augment else None
    return T.Compose(
        [
            augment or moco_v2_augmentations(size),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def crop_transforms(config: PretrainConfig) -> list[Callable]:
    """One transform per crop index of ``config`` (large crops first, then small), AutoAugment on
    ``config.auto_augment_crops`` only."""
    crops = config.crops
    sizes: Sequence[int] = [crops.large_size] * crops.large_crops + [crops.small_size] * crops.small_crops
    chosen = set(config.auto_augment_crops)
    return [crop_transform(size, index in chosen) for index, size in enumerate(sizes)]
