"""Mask pooling against hand computations and the plain upsample-then-average reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dense_retrieval.errors import InputError
from dense_retrieval.retrieval.pooling import grid_weights, interpolation_matrix, pool_masks


def test_downsample_pooling_by_hand():
    # 2 channels on a 2x2 grid; a 4x4 mask covering the left column of cells fully and one
    # pixel of the top-right cell: area weights are 1, 1/4, 0 and 1 on the cells.
    features = torch.tensor([[[1.0, 3.0], [5.0, 7.0]], [[2.0, 0.0], [4.0, 0.0]]])
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :, :2] = True
    mask[0, 0, 2] = True
    pooled = pool_masks(features, mask, mode="downsample", normalize=False)
    # weights [[1, 1/4], [1, 0]]: channel 0 = (1 + 3/4 + 5) / 2.25, channel 1 = (2 + 0 + 4) / 2.25
    expected = torch.tensor([[(1 + 0.75 + 5) / 2.25, 6 / 2.25]])
    assert torch.allclose(pooled, expected)
    normalized = pool_masks(features, mask, mode="downsample")
    assert torch.allclose(normalized, expected / expected.norm())


def test_upsample_pooling_by_hand():
    # A 1x2 grid upsampled to 1x4 (align_corners=False): columns get weights
    # [1, 0], [3/4, 1/4], [1/4, 3/4], [0, 1] of the two cells.
    features = torch.tensor([[[0.0, 8.0]]])  # C=1, h=1, w=2
    mask = torch.tensor([[[False, True, True, False]]])
    pooled = pool_masks(features, mask, mode="upsample", normalize=False)
    # upsampled row = [0, 2, 6, 8]; mean over columns 1 and 2 = 4
    assert pooled.item() == pytest.approx(4.0)
    assert interpolation_matrix(2, 4).tolist() == [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]]


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (50, 17)])
def test_upsample_pooling_equals_dense_reference(size):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(24, 7, 9, generator=generator)
    masks = torch.rand(4, *size, generator=generator) > 0.7
    upsampled = F.interpolate(features[None], size=size, mode="bilinear", align_corners=False)[0]
    reference = torch.stack([(upsampled * m).flatten(1).sum(1) / m.sum() for m in masks.float()])
    pooled = pool_masks(features, masks, mode="upsample")
    assert torch.allclose(pooled, F.normalize(reference, dim=1), atol=1e-5)
    assert torch.allclose(pooled.norm(dim=1), torch.ones(4))


def test_weights_sum_to_mask_area():
    masks = torch.zeros(2, 40, 40, dtype=torch.bool)
    masks[0, 5:20, 3:30] = True
    masks[1, 30:, 30:] = True
    weights = grid_weights(masks, (5, 5), "upsample")
    assert torch.allclose(weights.flatten(1).sum(1), masks.flatten(1).sum(1).float(), rtol=1e-5)


def test_large_masks_do_not_materialise_upsampled_features():
    # 2048 channels at 512x512 would be 2 GiB upsampled; the separable form needs K x H x w.
    features = torch.randn(2048, 64, 64)
    masks = torch.zeros(3, 512, 512, dtype=torch.bool)
    masks[0, :100], masks[1, 200:300, 100:400], masks[2, 400:, 400:] = True, True, True
    pooled = pool_masks(features, masks)
    assert pooled.shape == (3, 2048)


def test_bad_inputs():
    features = torch.randn(4, 3, 3)
    with pytest.raises(InputError, match="mask 1 is empty"):
        pool_masks(features, torch.stack([torch.ones(6, 6), torch.zeros(6, 6)]).bool())
    with pytest.raises(InputError, match="unknown pooling mode"):
        pool_masks(features, torch.ones(1, 6, 6, dtype=torch.bool), mode="max")
    with pytest.raises(InputError, match="features must be"):
        pool_masks(features[0], torch.ones(1, 6, 6, dtype=torch.bool))
    assert pool_masks(features, torch.zeros(0, 6, 6, dtype=torch.bool)).shape == (0, 4)
