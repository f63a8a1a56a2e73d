"""InfoNCE and the nearest-neighbour loss against plain-loop references (float64, one query at a time)."""

from __future__ import annotations

import math

import torch

from dense_retrieval.pretrain.losses import (
    contrastive_logits,
    info_nce,
    nearest_neighbour_loss,
    nearest_neighbours,
    normalize,
)

B, Q, D, C, K, T, TOPK = 3, 5, 8, 6, 12, 0.2, 4


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    queries = normalize(torch.randn(B, Q, D, generator=g, dtype=torch.float64))
    keys = normalize(torch.randn(B, D, generator=g, dtype=torch.float64))
    queue = normalize(torch.randn(K, D, generator=g, dtype=torch.float64)).T
    features = normalize(torch.randn(B, Q, C, generator=g, dtype=torch.float64))
    feature_queue = normalize(torch.randn(K, C, generator=g, dtype=torch.float64)).T
    return queries, keys, queue, features, feature_queue


def _dot(a, b) -> float:
    return sum(float(x) * float(y) for x, y in zip(a, b, strict=True))


def test_info_nce_for_one_plus_four_queries_equals_a_plain_loop():
    queries, keys, queue, _, _ = _inputs()
    positive, negative = contrastive_logits(queries, keys, queue)
    loss, accuracy = info_nce(positive, negative, T)

    losses, correct = [], 0
    for b in range(B):
        for q in range(Q):  # 1 large + 4 small queries, all against the one key of sample b
            logits = [_dot(queries[b, q], keys[b]) / T] + [_dot(queries[b, q], queue[:, j]) / T for j in range(K)]
            top = max(logits)
            log_sum = top + math.log(sum(math.exp(v - top) for v in logits))
            losses.append(log_sum - logits[0])
            correct += logits[0] == top
    assert math.isclose(float(loss), sum(losses) / len(losses), rel_tol=1e-12)
    assert math.isclose(float(accuracy), 100 * correct / len(losses), rel_tol=1e-12)


def test_nearest_neighbour_loss_equals_a_plain_loop():
    queries, keys, queue, features, feature_queue = _inputs(1)
    _, negative = contrastive_logits(queries, keys, queue)
    neighbours = nearest_neighbours(features.reshape(B * Q, C), feature_queue, TOPK)
    loss = nearest_neighbour_loss(negative, neighbours, T)

    per_query = []
    for b in range(B):
        for q in range(Q):
            # neighbours: the TOPK queue entries closest in pooled-backbone space
            similarity = [_dot(features[b, q], feature_queue[:, j]) for j in range(K)]
            positives = sorted(range(K), key=lambda j: -similarity[j])[:TOPK]
            # positives scored among the projection-space negatives only (the key is not in the softmax)
            logits = [_dot(queries[b, q], queue[:, j]) / T for j in range(K)]
            log_norm = math.log(sum(math.exp(v) for v in logits))
            per_query.append(-sum(logits[j] - log_norm for j in positives) / TOPK)
    assert sorted(neighbours[0].tolist()) == sorted(
        sorted(range(K), key=lambda j: -_dot(features[0, 0], feature_queue[:, j]))[:TOPK]
    )
    assert math.isclose(float(loss), sum(per_query) / len(per_query), rel_tol=1e-12)


def test_neighbours_carry_no_gradient_and_the_loss_does():
    queries, keys, queue, features, feature_queue = _inputs(2)
    queries.requires_grad_(True)
    features.requires_grad_(True)
    _, negative = contrastive_logits(queries, keys, queue)
    neighbours = nearest_neighbours(features.reshape(B * Q, C), feature_queue, TOPK)
    assert not neighbours.requires_grad
    nearest_neighbour_loss(negative, neighbours, T).backward()
    assert queries.grad is not None and queries.grad.abs().sum() > 0
    assert features.grad is None


def test_info_nce_accuracy_is_100_when_the_key_is_the_query():
    queries, _, queue, _, _ = _inputs(3)
    keys = queries[:, 0]
    positive, negative = contrastive_logits(queries[:, :1], keys, queue)
    _, accuracy = info_nce(positive, negative, T)
    assert float(accuracy) == 100.0
