"""The Hummingbird preset's network inputs against open-hummingbird-eval's transforms, step by step.

The reference rebuilds what ``hbird/utils/transforms.py`` and ``image_transformations.py`` do, in their
order, with torchvision: the image's own transforms first (jitter, ToTensor, Normalize with the std
(0.229, 0.224, 0.255)), then the shared ones on the normalised tensor and the label tensor
(RandomResizedCrop: bilinear with antialias for the image, nearest for the labels; or Resize). The toolkit
crops before normalising; the two must agree to float rounding, and the labels exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from dense_retrieval.backbone.preprocessing import IMAGENET_STD, get_preprocessing
from dense_retrieval.protocols import HUMMINGBIRD
from dense_retrieval.retrieval.dense.transforms import memory_input, validation_input

RECIPE = get_preprocessing(HUMMINGBIRD.features.preprocess)
MEAN, STD = RECIPE.mean, RECIPE.std
SETTINGS = HUMMINGBIRD.dense.transforms


def _scene(seed: int, height: int = 181, width: int = 243) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(2)))
    labels = np.zeros((height, width), np.uint8)
    labels[30:120, 40:200] = 7
    labels[60:90, 100:150] = 255
    return rgb, labels


def _normalised(image: np.ndarray) -> torch.Tensor:
    """What the toolkit's feature extractor feeds the network: (pixels in [0, 1] - mean) / std, CHW."""
    tensor = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
    tensor = tensor / 255.0 if image.dtype == np.uint8 else tensor
    return (tensor - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def test_preset_is_the_reproductions():
    assert STD == (0.229, 0.224, 0.255) and IMAGENET_STD == (0.229, 0.224, 0.225)
    assert HUMMINGBIRD.features.preprocess == "hummingbird" and HUMMINGBIRD.features.resize == "native"
    assert get_preprocessing("hummingbird-imagenet").std == IMAGENET_STD
    assert SETTINGS.crop_scale == (0.5, 2.0) and SETTINGS.jitter == (0.1, 0.1, 0.1, 0.1)
    assert SETTINGS.jitter_probability == 0.5
    assert HUMMINGBIRD.dense.input_for(16) == 512 and HUMMINGBIRD.dense.input_for(8) == 512
    assert HUMMINGBIRD.dense.input_for(14) == 504


def test_validation_input_equals_the_reproductions_resize():
    rgb, labels = _scene(0)
    found = validation_input(rgb, labels, 128, RECIPE)
    image = T.Compose([T.Resize((128, 128), antialias=True), T.ToTensor(), T.Normalize(MEAN, STD)])(
        Image.fromarray(rgb)
    )
    target = TF.resize(T.ToTensor()(Image.fromarray(labels)), [128, 128], InterpolationMode.NEAREST)
    assert torch.allclose(_normalised(found.image), image, atol=1e-5)
    assert ((target * 255).round().long()[0].numpy() == found.labels).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_memory_input_equals_the_reproductions_jitter_then_crop(seed):
    rgb, labels = _scene(seed)
    found = memory_input(rgb, labels, 96, SETTINGS, seed, RECIPE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        jitter = [
            T.RandomApply([T.ColorJitter(**{name: 0.1})], p=0.5)
            for name in ("brightness", "contrast", "saturation", "hue")
        ]
        image = T.Compose([*jitter, T.ToTensor(), T.Normalize(MEAN, STD)])(Image.fromarray(rgb))
        target = T.ToTensor()(Image.fromarray(labels))
        top, left, height, width = T.RandomResizedCrop.get_params(image, scale=[0.5, 2.0], ratio=[3 / 4, 4 / 3])
    image = TF.resized_crop(image, top, left, height, width, [96, 96], InterpolationMode.BILINEAR, antialias=True)
    target = TF.resized_crop(target, top, left, height, width, [96, 96], InterpolationMode.NEAREST)
    assert found.crop == (top, left, height, width)
    assert torch.allclose(_normalised(found.image), image, atol=2e-5)
    assert ((target * 255).round().long()[0].numpy() == found.labels).all()


def test_memory_inputs_are_reproducible_and_leave_the_global_generator_alone():
    rgb, labels = _scene(5)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = memory_input(rgb, labels, 64, SETTINGS, 9, RECIPE)
    assert torch.equal(torch.random.get_rng_state(), before)
    again = memory_input(rgb, labels, 64, SETTINGS, 9, RECIPE)
    other = memory_input(rgb, labels, 64, SETTINGS, 10, RECIPE)
    assert np.array_equal(first.image, again.image) and first.crop == again.crop
    assert not np.array_equal(first.image, other.image)
