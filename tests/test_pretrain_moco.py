"""The MoCo model: momentum update, queue wrap-around, shuffle-BN, the loss order, the checkpoint layout."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
import torchvision

from dense_retrieval.backbone.specs import get_spec
from dense_retrieval.backbone.weights.checkpoints import apply_state_dict, inspect_checkpoint, load_checkpoint
from dense_retrieval.pretrain import shuffle_bn
from dense_retrieval.pretrain.checkpoint import build_payload, save_checkpoint
from dense_retrieval.pretrain.config import OURS_CPU, MultiCropConfig
from dense_retrieval.pretrain.encoder import Encoder, feature_dim
from dense_retrieval.pretrain.losses import contrastive_logits, info_nce, nearest_neighbour_loss, nearest_neighbours
from dense_retrieval.pretrain.moco import MoCo

TINY = replace(OURS_CPU, crops=MultiCropConfig(large_size=32, small_size=16), dim=8, queue_size=10, nn_topk=3)


def _model(config=TINY, bn_splits: int = 2) -> MoCo:
    return MoCo(config, bn_splits=bn_splits)


def _batch(b: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 2, 3, 32, 32, generator=g), torch.randn(b, 4, 3, 16, 16, generator=g)


def test_momentum_update_moves_the_key_encoder_towards_the_query_encoder():
    model = _model()
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(torch.randn_like(p))
    before_q = [p.clone() for p in model.encoder_q.parameters()]
    before_k = [p.clone() for p in model.encoder_k.parameters()]
    buffers = [b.clone() for b in model.encoder_k.buffers()]
    model.momentum_update()
    m = TINY.key_momentum
    for q, k0, k in zip(before_q, before_k, model.encoder_k.parameters(), strict=True):
        torch.testing.assert_close(k, m * k0 + (1 - m) * q)
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.encoder_k.buffers(), strict=True))
    assert not any(p.requires_grad for p in model.encoder_k.parameters())


def test_queue_wraps_around_its_end():
    model = _model()  # K = 10
    batches = [torch.randn(4, TINY.dim) for _ in range(3)]
    features = [torch.randn(4, feature_dim("resnet18")) for _ in range(3)]
    reference = [None] * 10  # a plain ring buffer
    pointer = 0
    for keys, feats in zip(batches, features, strict=True):
        model.enqueue(keys, feats)
        for row in range(4):
            reference[pointer] = (keys[row], feats[row])
            pointer = (pointer + 1) % 10
    assert int(model.queue_ptr) == pointer == 2
    for column, (key, feat) in enumerate(reference):
        assert torch.equal(model.queue[:, column], key) and torch.equal(model.queue_backbone[:, column], feat)
    assert torch.equal(model.queue[:, [8, 9, 0, 1]], batches[2].T)  # the third batch straddles the end


def test_shuffle_then_unshuffle_restores_the_order():
    x = torch.arange(12.0)[:, None].repeat(1, 3)
    shuffled, unshuffle_index = shuffle_bn.shuffle(x, seed=7)
    assert not torch.equal(shuffled, x) and sorted(shuffled[:, 0].tolist()) == x[:, 0].tolist()
    assert torch.equal(shuffle_bn.unshuffle(shuffled, unshuffle_index), x)
    again, _ = shuffle_bn.shuffle(x, seed=7)
    assert torch.equal(again, shuffled)  # one permutation per seed: every process draws the same


def test_keys_are_encoded_under_split_batch_norm_on_the_shuffled_batch():
    model = _model(bn_splits=2)
    keys = _batch(8)[0][:, -1]
    projection, pooled = model.encode_keys(keys, shuffle_seed=3)
    permutation = shuffle_bn.shuffle_permutation(8, 3, keys.device)
    groups = [model.encoder_k(keys[permutation[:4]]), model.encoder_k(keys[permutation[4:]])]
    expected = torch.nn.functional.normalize(torch.cat([p for _, p in groups]), dim=-1)[torch.argsort(permutation)]
    torch.testing.assert_close(projection, expected)
    # one batch-norm group over all 8 keys gives other keys: the split is real
    whole = torch.nn.functional.normalize(model.encoder_k(keys)[1], dim=-1)
    assert not torch.allclose(projection, whole, atol=1e-4)
    assert pooled.shape == (8, feature_dim("resnet18"))


def test_both_losses_use_the_queues_from_before_the_batch_and_the_batch_is_enqueued_after():
    model = _model()
    large, small = _batch(4)
    reference = copy.deepcopy(model)
    output = model(large, small, shuffle_seed=5)
    reference.momentum_update()
    queries, features = reference.encode_queries(large[:, :-1], small)
    keys, key_features = reference.encode_keys(large[:, -1], shuffle_seed=5)
    positive, negative = contrastive_logits(queries, keys, reference.queue)
    expected_nce, _ = info_nce(positive, negative, TINY.temperature)
    neighbours = nearest_neighbours(features.flatten(0, 1), reference.queue_backbone, TINY.nn_topk)
    expected_nn = nearest_neighbour_loss(negative, neighbours, TINY.temperature)
    torch.testing.assert_close(output.info_nce, expected_nce.detach())
    torch.testing.assert_close(output.nn_loss, expected_nn.detach())
    torch.testing.assert_close(output.loss, expected_nce + TINY.nn_weight * expected_nn)
    torch.testing.assert_close(model.queue[:, :4], keys.T)
    torch.testing.assert_close(model.queue_backbone[:, :4], key_features.T)
    assert int(model.queue_ptr) == 4


def test_warm_up_reports_the_nn_loss_without_training_on_it():
    model = _model()
    output = model(*_batch(4), shuffle_seed=1, nn_weight=0.0)
    assert float(output.nn_loss) > 0
    torch.testing.assert_close(output.loss, output.info_nce)
    output.loss.backward()  # only InfoNCE has a graph


@pytest.mark.parametrize("arch", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow), "mobilenet_v2"])
def test_query_encoder_loads_unchanged_through_the_checkpoint_loader(arch, tmp_path):
    config = replace(TINY, arch=arch)
    model = MoCo(config, bn_splits=1)
    reference = getattr(torchvision.models, arch)(weights=None).state_dict()
    head = get_spec(arch).head_prefix
    names = set(model.encoder_q.state_dict())
    assert names == {k for k in reference if not k.startswith(head)} | {
        "fc.0.weight",
        "fc.0.bias",
        "fc.2.weight",
        "fc.2.bias",
    }
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = save_checkpoint(tmp_path / "checkpoint.pth.tar", build_payload(model, optimizer, arch, 3, {"step": 1}))

    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"epoch", "arch", "state_dict", "optimizer", "pretrain"}
    assert payload["epoch"] == 3 and payload["arch"] == arch
    state = payload["state_dict"]
    assert {"module.queue", "module.queue_ptr", "module.queue_backbone"} <= set(state)
    assert state["module.queue_backbone"].shape == (feature_dim(arch), TINY.queue_size)
    assert all(k.startswith(("module.encoder_q.", "module.encoder_k.", "module.queue")) for k in state)

    loaded = load_checkpoint(path, arch)
    assert loaded.checkpoint_format == "moco"
    network = getattr(torchvision.models, arch)(weights=None)
    apply_state_dict(network, loaded, arch)  # strict: raises on any missing or unexpected key
    own = model.encoder_q.state_dict()
    for key, value in network.state_dict().items():
        if not key.startswith(head):
            assert torch.equal(value, own[key]), key
    report = inspect_checkpoint(path)
    assert report["detected_architecture"] == arch and report["format"] == "moco"


def test_encoder_returns_pooled_features_and_projections():
    encoder = Encoder("mobilenet_v2", dim=16)
    pooled, projection = encoder(torch.randn(2, 3, 32, 32))
    assert pooled.shape == (2, 1280) and projection.shape == (2, 16)
    assert not hasattr(encoder, "classifier")
