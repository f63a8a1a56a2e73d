"""Per-crop augmentations and the samples they make: AutoAugment only where chosen, reproducible samples."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import torch
from torch import nn
from torchvision import transforms as T

from dense_retrieval.pretrain.augment import blur_kernel_size, crop_transforms
from dense_retrieval.pretrain.config import MOCO_V2, MOCO_V2_CPU, OURS, MultiCropConfig
from dense_retrieval.pretrain.dataset import EpochSampler, MultiCropDataset
from dense_retrieval.pretrain.source import scan_sources
from tests.pretrain_helpers import write_photos

SMALL = replace(OURS, crops=MultiCropConfig(large_size=32, small_size=16))


def _modules(transform, kind) -> list[nn.Module]:
    """Every ``kind`` transform inside a (nested) torchvision transform."""
    found = [transform] if isinstance(transform, kind) else []
    for child in getattr(transform, "transforms", []) or []:
        found += _modules(child, kind)
    return found


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    write_photos(folder, 6, size=64)
    return scan_sources([folder])


def test_auto_augment_reaches_only_the_chosen_crops(photos):
    dataset = MultiCropDataset(photos, SMALL)
    calls: Counter[int] = Counter()
    for index, transform in enumerate(dataset.transforms):
        for module in _modules(transform, T.AutoAugment):
            module.register_forward_hook(lambda *_args, crop=index: calls.update([crop]))
    samples = 40
    for i in range(samples):
        dataset[(i, i % len(dataset))]  # distinct (epoch, index) pairs: distinct samples
    assert set(calls) == {0, 2, 3, 4, 5}  # the key (crop 1) never
    for crop in (0, 2, 3, 4, 5):  # the 50/50 choice: about half of the samples, clearly neither none nor all
        assert 0.2 * samples < calls[crop] < 0.8 * samples, calls


def test_moco_v2_has_no_auto_augment_and_every_crop_has_the_moco_v2_augmentations():
    for config in (MOCO_V2, MOCO_V2_CPU):
        transforms = crop_transforms(config)
        assert len(transforms) == 2
        assert not any(_modules(t, T.AutoAugment) for t in transforms)
    for transform in crop_transforms(OURS):
        assert _modules(transform, T.ColorJitter) and _modules(transform, T.RandomGrayscale)
        assert _modules(transform, T.GaussianBlur) and _modules(transform, T.RandomHorizontalFlip)
        (jitter,) = _modules(transform, T.ColorJitter)
        assert (jitter.brightness, jitter.hue) == ((0.6, 1.4), (-0.1, 0.1))


def test_auto_augment_uses_torchvisions_imagenet_policy():
    (module,) = _modules(crop_transforms(OURS)[0], T.AutoAugment)
    assert module.policy == T.AutoAugmentPolicy.IMAGENET


def test_blur_kernel_is_a_tenth_of_the_crop_and_odd():
    assert [blur_kernel_size(s) for s in (224, 160, 96, 64, 32)] == [23, 17, 9, 7, 3]


def test_samples_have_the_recipes_shapes_and_are_normalised(photos):
    sample = MultiCropDataset(photos, SMALL)[(0, 1)]
    assert sample["large"].shape == (2, 3, 32, 32) and sample["small"].shape == (4, 3, 16, 16)
    assert sample["large"].dtype == torch.float32
    assert -3 < float(sample["large"].mean()) < 3 and float(sample["large"].std()) > 0.1
    moco = MultiCropDataset(photos, replace(MOCO_V2, crops=MultiCropConfig(large_size=32, small_crops=0)))[(0, 1)]
    assert moco["large"].shape == (2, 3, 32, 32) and moco["small"].shape == (0, 3, 96, 96)


def test_a_sample_depends_only_on_seed_epoch_and_index(photos):
    dataset = MultiCropDataset(photos, SMALL)
    torch.manual_seed(123)
    first = dataset[(3, 2)]
    torch.manual_seed(999)  # the global generators do not matter, and are left as they were
    state = torch.get_rng_state()
    again = dataset[(3, 2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first["large"], again["large"]) and torch.equal(first["small"], again["small"])
    assert not torch.equal(dataset[(4, 2)]["large"], first["large"])  # another epoch, other crops
    other_seed = MultiCropDataset(photos, replace(SMALL, seed=1))
    assert not torch.equal(other_seed[(3, 2)]["large"], first["large"])


def test_epoch_sampler_follows_the_distributed_order_and_resumes_mid_epoch():
    from torch.utils.data import DistributedSampler

    for rank in range(2):
        sampler = EpochSampler(10, world_size=2, rank=rank, seed=4)
        sampler.set_epoch(3)
        reference = DistributedSampler(range(10), num_replicas=2, rank=rank, shuffle=True, seed=4, drop_last=True)
        reference.set_epoch(3)
        assert list(sampler) == [(3, i) for i in reference]
        sampler.set_epoch(3, skip=2)
        assert list(sampler) == [(3, i) for i in list(reference)[2:]] and len(sampler) == 3
    both = [i for rank in range(2) for _, i in EpochSampler(10, 2, rank, 4)]
    assert sorted(both) == list(range(10))
