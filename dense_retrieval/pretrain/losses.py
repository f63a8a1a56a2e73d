"""The two losses of the paper, pure torch (no state, no I/O).

InfoNCE (MoCo, He et al. 2020): every query of a sample is contrasted with the sample's one key
(positive) against the queue (negatives): cross-entropy over ``[q.k, q.queue] / T`` with the positive at
index 0. With 1 large + 4 small query crops that is 5 rows per sample.

Nearest-neighbour loss (Van Gansbeke et al. 2021, "kNN loss"; SupCon-style, Khosla et al. 2020): for each
query, its ``topk`` neighbours in the queue of pooled backbone features (by dot product of L2-normalised
vectors) are its positives; the loss is the mean over those positives of ``-log softmax(q.queue / T)``,
the softmax taken over the projection-space negatives only (the positive key is not among them), then
averaged over the queries. Both losses see the queue as it was before this batch was enqueued.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def contrastive_logits(
    queries: torch.Tensor, keys: torch.Tensor, queue: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative dot products (not divided by T).

    Args:
        queries: float ``[B, Q, D]``, L2-normalised; Q query crops per sample.
        keys: float ``[B, D]``, L2-normalised; one key per sample.
        queue: float ``[D, K]``, L2-normalised columns.

    Returns:
        ``positive`` float ``[B * Q]`` and ``negative`` float ``[B * Q, K]``, rows in sample-major order.
    """
    positive = (queries * keys[:, None, :]).sum(-1).reshape(-1)
    negative = queries.reshape(-1, queries.shape[-1]) @ queue
    return positive, negative


def info_nce(positive: torch.Tensor, negative: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE over ``[positive, negatives] / T``.

    Args:
        positive: float ``[N]``; negative: float ``[N, K]`` (from :func:`contrastive_logits`).

    Returns:
        (loss: mean cross-entropy with the positive at index 0, top-1 accuracy in percent).
    """
    logits = torch.cat([positive[:, None], negative], dim=1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, target)
    with torch.no_grad():
        accuracy = (logits.argmax(dim=1) == 0).float().mean() * 100
    return loss, accuracy


def nearest_neighbours(query_features: torch.Tensor, feature_queue: torch.Tensor, topk: int) -> torch.Tensor:
    """Indices of the ``topk`` most similar queue entries per query (no gradient).

    Args:
        query_features: float ``[N, C]``, L2-normalised pooled backbone features of the queries.
        feature_queue: float ``[C, K]``, L2-normalised pooled backbone features of past keys.

    Returns:
        long ``[N, topk]``.
    """
    with torch.no_grad():
        return torch.topk(query_features.detach() @ feature_queue, k=topk, dim=1).indices


def nearest_neighbour_loss(negative: torch.Tensor, neighbours: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over queries of the mean ``-log softmax(negative / T)`` at the neighbour columns.

    Args:
        negative: float ``[N, K]``, query-queue dot products in projection space (not divided by T).
        neighbours: long ``[N, topk]``, the positives' columns (:func:`nearest_neighbours`).

    Returns:
        A scalar.
    """
    log_prob = torch.log_softmax(negative / temperature, dim=1)
    return -log_prob.gather(1, neighbours).mean()


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise along the last dimension."""
    return F.normalize(x, dim=-1)
