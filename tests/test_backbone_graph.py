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


def test_a_result_does_not_depend_on_what_the_graph_ran_before():
    """Byte-equal outputs for one input whatever shapes came first (torchrun ranks see other inputs than one
    process): each new shape is warmed to its fused form before its result is used."""
    backbone = build_backbone(name="mobilenet_v2", layer="features.13", output_stride=8, weights="random:1")
    backbone = backbone.for_inference()
    generator = torch.Generator().manual_seed(0)
    inputs = [
        torch.randn(n, 3, h, w, generator=generator).contiguous(memory_format=torch.channels_last)
        for n, h, w in ((2, 64, 96), (1, 64, 96), (1, 72, 120))
    ]
    seen_all, fresh = GraphNetwork(backbone), GraphNetwork(backbone)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a torchrun rank: there a shape's unfused first run differs (by ~1e-11)
    try:
        with torch.inference_mode():
            history = [seen_all(batch) for batch in inputs]
            assert torch.equal(fresh(inputs[2]), history[2])  # a fresh graph, this shape first
            assert torch.equal(fresh(inputs[1]), history[1])  # a smaller batch of a known size
            assert torch.equal(seen_all(inputs[1]), history[1])  # and again: the same bytes
    finally:
        torch.set_num_threads(threads)


def test_extractor_uses_the_graph_for_videos_of_cnns_on_the_cpu_only():
    cnn = FeatureExtractor(build_backbone(name="mobilenet_v2", weights="random"), FeatureConfig(device="cpu"))
    assert cnn._network is cnn.backbone  # noqa: SLF001 - eager unless asked (photos come in every size)
    cnn.fuse_for_video()
    assert isinstance(cnn._network, GraphNetwork)  # noqa: SLF001
    fused = cnn._network  # noqa: SLF001
    cnn.fuse_for_video()
    assert cnn._network is fused  # noqa: SLF001 - once
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
