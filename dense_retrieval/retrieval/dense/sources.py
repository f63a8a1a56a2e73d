"""Images of a segmentation set as the Hummingbird protocol feeds them to a backbone.

:class:`ImagePatches` is the :class:`~.memory_build.PatchSource` of a memory: each memory image, once per
pass (augmented, or the validation resize when ``augmentation_epochs`` is 0), through the feature
extractor. :func:`validation_features` gives the query side: each validation image resized, its labels
at the input size and its features. Both stream through :meth:`FeatureExtractor.stream` (one batch waits
at most), so any number of images passes in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ...backbone.features import FeatureExtractor
from ...data.segmentation_sets import LabelledImages
from .config import DenseProtocol
from .memory_build import PatchBatch
from .transforms import InputSample, derived_seed, memory_input, validation_input

_TRANSFORM = 0  # the purpose of a derived seed: crops and jitter (1 is the sampling noise)


class ImagePatches:
    """The memory images of ``split``: one :class:`PatchBatch` per image and pass.

    Args:
        split: the memory split (images and label PNGs).
        extractor: the backbone; its resize policy must leave input x input images as they are.
        protocol: passes, transforms and seed.
        input_size: the network input side S.
    """

    def __init__(self, split: LabelledImages, extractor: FeatureExtractor, protocol: DenseProtocol, input_size: int):
        self.split, self.extractor, self.protocol, self.input_size = split, extractor, protocol, input_size
        self.names: Sequence[str] = [str(path) for path in split.images]

    def sample(self, image: int, epoch: int, rgb: np.ndarray, labels: np.ndarray) -> InputSample:
        """The network input of ``image`` in pass ``epoch`` (reproducible from the seed alone)."""
        recipe = self.extractor.preprocessing
        if self.protocol.augmentation_epochs == 0:
            return validation_input(rgb, labels, self.input_size, recipe)
        seed = derived_seed(self.protocol.seed, epoch, image, _TRANSFORM)
        return memory_input(rgb, labels, self.input_size, self.protocol.transforms, seed, recipe)

    def batches(self, images: Sequence[int]) -> Iterator[PatchBatch]:
        passes = self.protocol.passes

        def inputs() -> Iterator[tuple[int, int, InputSample]]:
            for image in images:
                rgb, labels = self.split.read(image, self.extractor.preprocessing.decode)
                for epoch in range(passes):
                    yield image, epoch, self.sample(image, epoch, rgb, labels)

        stream = self.extractor.stream(
            inputs(), lambda item: item[2].image, total=len(images) * passes, desc="memory images"
        )
        for (image, epoch, sample), maps in stream:
            yield PatchBatch(image, epoch, maps.single(), torch.from_numpy(sample.labels), sample.crop)


def validation_features(
    split: LabelledImages, extractor: FeatureExtractor, input_size: int
) -> Iterator[tuple[int, np.ndarray, torch.Tensor]]:
    """Per validation image: (index, labels uint8 [S, S] at the input size, features float [D, h, w])."""

    def inputs() -> Iterator[tuple[int, InputSample]]:
        for index in range(len(split)):
            rgb, labels = split.read(index, extractor.preprocessing.decode)
            yield index, validation_input(rgb, labels, input_size, extractor.preprocessing)

    stream = extractor.stream(inputs(), lambda item: item[1].image, total=len(split), desc="validation images")
    for (index, sample), maps in stream:
        yield index, sample.labels, maps.single()
