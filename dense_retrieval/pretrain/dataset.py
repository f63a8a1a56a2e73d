"""Training samples: the crops of one image, reproducible from (seed, epoch, index) alone.

Every sample seeds torch's and Python's generators from ``(seed, epoch, index)`` before cropping and
augmenting (restoring them afterwards), so the crops of a sample do not depend on the number of data
workers, on which worker made it, or on whether the run was resumed in the middle of an epoch. The
sampler therefore hands out ``(epoch, index)`` pairs: :class:`EpochSampler` follows
``DistributedSampler``'s order (shuffled by ``seed + epoch``, rank ``r`` of ``W`` takes every W-th index,
the tail dropped so ranks stay even) and can start part-way through an epoch.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler, Sampler

from ..errors import DataFormatError, DenseRetrievalError, InputError
from .augment import crop_transforms
from .config import PretrainConfig
from .crops import MultiCrop
from .source import ImageSource

MAX_SUBSTITUTES = 16  # unreadable images in a row before a sample gives up


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index`` in ``epoch`` (a 32-bit integer, well mixed)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator and Python's ``random`` for the block; restore both afterwards."""
    python_state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)


class MultiCropDataset(Dataset):
    """``dataset[(epoch, index)]`` -> the crops of image ``index`` as tensors.

    Returns a dict: ``large`` float ``[large_crops, 3, L, L]`` (the last one is the key), ``small`` float
    ``[small_crops, 3, S, S]``, ``fallbacks`` (small crops that fell back to an unconstrained box),
    ``unreadable`` (images skipped because they failed to decode; the next readable one is used) and
    ``index`` (the image actually used).
    """

    def __init__(self, source: ImageSource, config: PretrainConfig):
        self.items = list(source.items)
        self.config = config
        self.multicrop = MultiCrop(config.crops)
        self.transforms = crop_transforms(config)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, used, unreadable = self._read(index)
        crops = self.config.crops
        with seeded(sample_seed(self.config.seed, epoch, index)):
            cropped = self.multicrop(image)
            tensors = [transform(crop) for transform, crop in zip(self.transforms, cropped.images, strict=True)]
        small = tensors[crops.large_crops :]
        return {
            "large": torch.stack(tensors[: crops.large_crops]),
            "small": torch.stack(small) if small else torch.empty(0, 3, crops.small_size, crops.small_size),
            "fallbacks": cropped.fallbacks,
            "unreadable": unreadable,
            "index": used,
        }

    def _read(self, index: int) -> tuple[Image.Image, int, int]:
        for attempt in range(min(MAX_SUBSTITUTES, len(self.items))):
            position = (index + attempt) % len(self.items)
            try:
                return Image.fromarray(self.items[position].read()), position, attempt
            except (DataFormatError, InputError):
                continue
        raise DenseRetrievalError(
            f"{MAX_SUBSTITUTES} unreadable images in a row from {self.items[index]}",
            hint="check the data: many files fail to decode",
        )


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` pairs in ``DistributedSampler`` order for one process, from position ``skip``.

    Args:
        length: images in the data set.
        world_size: processes; rank: this process.
        seed: shuffles the order (with the epoch).
    """

    def __init__(self, length: int, world_size: int, rank: int, seed: int):
        self._order = DistributedSampler(
            range(length), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Iterate ``epoch`` next, leaving out its first ``skip`` indices (a resumed epoch)."""
        self.epoch, self.skip = epoch, skip
        self._order.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for position, index in enumerate(self._order):
            if position >= self.skip:
                yield self.epoch, index

    def __len__(self) -> int:
        return max(0, len(self._order) - self.skip)
