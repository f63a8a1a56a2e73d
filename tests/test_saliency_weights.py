"""Soft saliency pooling as MaskContrast does it, against a plain rebuild of its retrieval_utils.py.

MaskContrast (segmentation/utils/retrieval_utils.py) pools each salient object as
``output @ (sal * (sal > 0.5))`` over the features upsampled to the image, then L2-normalises: the
saliency values themselves are the weights where they pass 0.5, not a binary mask. The toolkit's
``saliency`` proposals keep both the mask and those soft weights; the MaskContrast protocol pools with
the weights (``VocProtocol.saliency_weights="soft"``), and binary maps give the binary result.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.features import FeatureExtractor
from dense_retrieval.backbone.networks import build_backbone
from dense_retrieval.data.synth import make_synthetic_voc
from dense_retrieval.data.voc import VocDataset
from dense_retrieval.errors import InputError
from dense_retrieval.retrieval.config import VocProtocol
from dense_retrieval.retrieval.pooling import pool_masks
from dense_retrieval.retrieval.proposals import ProposalConfig, Proposer
from dense_retrieval.retrieval.voc_protocol import _segments, evaluate_voc


def maskcontrast_prototype(features: torch.Tensor, sal: torch.Tensor) -> torch.Tensor:
    """retrieval_utils.build_memory_bank for one image: features [C, h, w] upsampled bilinearly to the
    saliency map's [H, W], ``bmm(output, sal * (sal > 0.5))``, L2-normalised. -> [C]."""
    output = F.interpolate(features[None], size=sal.shape, mode="bilinear", align_corners=False)[0]
    sal_proto = sal.reshape(-1, 1)
    prototype = output.reshape(output.shape[0], -1) @ (sal_proto * (sal_proto > 0.5).float())
    return F.normalize(prototype[:, 0], dim=0)


def _soft_map(height: int, width: int, seed: int) -> torch.Tensor:
    """A saliency map in [0, 1]: a bright blob fading outwards, crossing 0.5 on its way."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    generator = torch.Generator().manual_seed(seed)
    cy, cx = height * (0.3 + 0.4 * torch.rand(1, generator=generator)), width * 0.5
    distance = ((ys - cy) / height) ** 2 + ((xs - cx) / width) ** 2
    return torch.exp(-distance / 0.05).float()


@pytest.mark.parametrize("size", [(48, 64), (37, 53)])
def test_soft_weights_pool_like_maskcontrast(size):
    features = torch.randn(16, 6, 8, generator=torch.Generator().manual_seed(0))
    sal = _soft_map(*size, seed=1)
    weights = sal * (sal > 0.5)
    ours = pool_masks(features, weights[None])[0]
    assert torch.allclose(ours, maskcontrast_prototype(features, sal), atol=1e-5)
    # the binary mask is another vector: the soft values matter
    binary = pool_masks(features, (sal > 0.5)[None])[0]
    assert (binary - ours).abs().max() > 1e-3


def test_binary_maps_give_the_binary_result():
    features = torch.randn(16, 6, 8, generator=torch.Generator().manual_seed(2))
    sal = (_soft_map(48, 64, seed=3) > 0.5).float()  # a 0/1 map
    soft = pool_masks(features, (sal * (sal > 0.5))[None])
    assert torch.allclose(soft, pool_masks(features, (sal > 0.5)[None]), atol=1e-6)
    assert torch.allclose(soft[0], maskcontrast_prototype(features, sal), atol=1e-5)


def test_saliency_proposals_carry_soft_weights_resized_like_labels(tmp_path):
    maps = tmp_path / "sal"
    maps.mkdir()
    values = (_soft_map(40, 60, seed=4) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(values).save(maps / "a.png")
    proposer = Proposer(ProposalConfig(method="saliency", saliency_dir=str(maps)))
    found = proposer(tmp_path / "a.jpg", np.zeros((40, 60, 3), np.uint8))
    unit = values.astype(np.float32) / 255
    np.testing.assert_array_equal(found.masks[0], unit > 0.5)
    np.testing.assert_array_equal(found.weights[0], np.where(unit > 0.5, unit, 0))
    # at another working size: mask and weights resized by the same nearest filter, so they keep agreeing
    resized = proposer(tmp_path / "a.jpg", np.zeros((64, 64, 3), np.uint8), native_size=(40, 60))
    assert resized.weights.shape == resized.masks.shape == (1, 64, 64)
    np.testing.assert_array_equal(resized.weights[0] > 0, resized.masks[0])
    assert VocProtocol().saliency_weights == "soft"
    with pytest.raises(InputError, match="unknown saliency weights"):
        VocProtocol(saliency_weights="hard")


@pytest.fixture(scope="module")
def voc_with_saliency(tmp_path_factory):
    """A small synthetic VOC set with two saliency folders: soft maps and their 0/255 binarisation."""
    root = tmp_path_factory.mktemp("voc") / "VOC2012"
    make_synthetic_voc(root, num_train=6, num_val=4, size=(48, 64), seed=5)
    soft, binary = root.parent / "soft", root.parent / "binary"
    soft.mkdir()
    binary.mkdir()
    for split in ("train", "val"):
        dataset = VocDataset(root, split)
        for index, image_id in enumerate(dataset.ids):
            labels = dataset.read_class_labels(image_id)
            blob = _soft_map(*labels.shape, seed=index).numpy()
            objects = (labels > 0) & (labels < 255)
            values = np.where(objects, 0.55 + 0.45 * blob, 0.3 * blob)  # soft inside, below 0.5 outside
            Image.fromarray(np.round(values * 255).astype(np.uint8)).save(soft / f"{image_id}.png")
            Image.fromarray(np.where(values > 0.5, 255, 0).astype(np.uint8)).save(binary / f"{image_id}.png")
    return root


def test_the_voc_protocol_pools_soft_saliency_and_binary_maps_score_alike(voc_with_saliency):
    extractor = FeatureExtractor(
        build_backbone(name="mobilenet_v2", weights="random:1"), FeatureConfig(resize="fixed:64x64", device="cpu")
    )
    root = voc_with_saliency
    soft_maps = ProposalConfig(method="saliency", saliency_dir=str(root.parent / "soft"))
    dataset = VocDataset(root, "train")
    for mode in ("soft", "binary"):
        protocol = VocProtocol(size=64, saliency_weights=mode, max_images=3)
        proposer = Proposer(soft_maps)
        for image_id, _, found, vectors in _segments(dataset, extractor, proposer, protocol):
            maps = extractor.extract([dataset.read_image(image_id)]).features[0]
            weights = found.weights if mode == "soft" else found.masks
            expected = pool_masks(maps, torch.from_numpy(weights)).numpy()
            np.testing.assert_allclose(vectors, expected, atol=1e-5)
    # 0/255 maps: soft and binary weighting are the same protocol, to the last number
    binary_maps = ProposalConfig(method="saliency", saliency_dir=str(root.parent / "binary"))
    reports = [
        evaluate_voc(root, extractor, binary_maps, VocProtocol(size=64, saliency_weights=mode))
        for mode in ("soft", "binary")
    ]
    for key in ("classes_21", "classes_7"):
        assert reports[0][key] == reports[1][key]
