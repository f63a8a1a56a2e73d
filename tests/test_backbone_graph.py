"""oneDNN Graph inference of CNN backbones on the CPU: the same features as eager, any input size, eager
where it does not apply or cannot trace."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.features import FeatureExtractor
from dense_retrieval.backbone.graph import GraphNetwork, graph_applies
from dense_retrieval.backbone.networks import build_backbone


@pytest.mark.parametrize("name,layer,stride", [("mobilenet_v2", "features.13", 8), ("resnet18", "layer3", 8)])
def test_graph_gives_the_eager_features_at_every_input_size(name, layer, stride):
    backbone = build_backbone(name=name, layer=layer, output_stride=stride, weights="random:1").for_inference()
    graph = GraphNetwork(backbone)
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for height, width in ((64, 96), (64, 96), (72, 120)):  # traced once, specialised again for a new size
            batch = torch.randn(1, 3, height, width, generator=generator).contiguous(memory_format=torch.channels_last)
            expected = backbone(batch)
            found = graph(batch)
            assert found.shape == expected.shape
            assert torch.allclose(found, expected, atol=1e-4, rtol=1e-4)
    assert graph._traced is not None  # noqa: SLF001 - it did run through the trace


def test_extractor_uses_the_graph_for_cnns_on_the_cpu_only():
    cnn = FeatureExtractor(build_backbone(name="mobilenet_v2", weights="random"), FeatureConfig(device="cpu"))
    assert isinstance(cnn._network, GraphNetwork)  # noqa: SLF001
    vit = build_backbone(name="vit_small_patch16", weights="random").for_inference()
    assert not graph_applies(vit, torch.device("cpu"), autocast=False)
    assert not graph_applies(cnn.backbone, torch.device("cuda"), autocast=False)
    assert not graph_applies(cnn.backbone, torch.device("cpu"), autocast=True)


def test_a_network_that_cannot_be_traced_runs_eagerly():
    class Network(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if torch.jit.is_tracing():
                raise RuntimeError("no tracing here")
            return x * 2

    network = Network()
    graph = GraphNetwork(network)
    batch = torch.ones(1, 3, 4, 4)
    assert torch.equal(graph(batch), batch * 2) and torch.equal(graph(batch), batch * 2)
    assert graph._failed and graph._traced is None  # noqa: SLF001 - traced once, then eager for good
