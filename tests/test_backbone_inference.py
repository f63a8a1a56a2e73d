"""The inference copy of a backbone: batch-norm folded, channels-last weights, the same features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.features import FeatureExtractor
from dense_retrieval.backbone.networks import build_backbone, fold_batch_norm
from dense_retrieval.backbone.specs import ARCHITECTURE_NAMES, ARCHITECTURES

CNNS = [name for name in ARCHITECTURE_NAMES if not ARCHITECTURES[name].is_vit]
VITS = [name for name in ARCHITECTURE_NAMES if ARCHITECTURES[name].is_vit]


def _batch_norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def _randomise_statistics(module: nn.Module, seed: int) -> None:
    """Random weights come with identity batch-norms; give them statistics that make folding matter."""
    generator = torch.Generator().manual_seed(seed)
    for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        n = bn.num_features
        bn.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
        bn.running_var.copy_(0.5 + torch.rand(n, generator=generator))
        bn.weight.data.copy_(0.5 + torch.rand(n, generator=generator))
        bn.bias.data.copy_(0.1 * torch.randn(n, generator=generator))


@pytest.mark.parametrize("name", CNNS)
@pytest.mark.parametrize("mode", ["remove", "dilate"])
def test_inference_copy_folds_every_batch_norm_and_keeps_the_features(name, mode):
    backbone = build_backbone(name=name, output_stride=8, stride_mode=mode, weights="random")
    _randomise_statistics(backbone, seed=len(name))
    folded = backbone.for_inference()
    assert _batch_norms(backbone) > 0 and _batch_norms(folded) == 0  # the original is untouched
    assert folded.describe() == backbone.describe() and not folded.training
    images = torch.randn(2, 3, 67, 101, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = backbone(images)
        got = folded(images.contiguous(memory_format=torch.channels_last))
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


@pytest.mark.parametrize("name", VITS[:1])
def test_inference_copy_of_a_vision_transformer_computes_the_same_tokens(name):
    backbone = build_backbone(name=name, weights="random")
    folded = backbone.for_inference()
    size = 2 * backbone.input_multiple
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.allclose(folded(images), backbone(images), rtol=1e-5, atol=1e-5)


def test_fold_leaves_a_batch_norm_that_does_not_follow_a_convolution():
    block = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    fold_batch_norm(block)
    assert isinstance(block[0], nn.BatchNorm2d) and isinstance(block[3], nn.BatchNorm2d)
    pair = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    fold_batch_norm(pair)  # training mode: batch statistics, nothing to fold
    assert isinstance(pair[1], nn.BatchNorm2d)


@pytest.mark.weights
def test_extractor_runs_the_folded_embedded_backbone_with_the_same_features():
    backbone = build_backbone(name="mobilenet_v2", output_stride=8)  # ImageNet weights: real statistics
    extractor = FeatureExtractor(backbone, FeatureConfig(l2_normalize=False, device="cpu"))
    assert _batch_norms(extractor.backbone) == 0 and _batch_norms(backbone) > 0
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    ((_, maps),) = extractor.stream([image])
    features = maps.features
    assert maps.single().permute(1, 2, 0).is_contiguous()  # channels-last rows: the propagator copies nothing
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    with torch.inference_mode():
        expected = backbone((batch - mean) / std)
    assert torch.allclose(features, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
