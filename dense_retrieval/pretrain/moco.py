"""The MoCo model of the paper: query and key encoders, the key queue and the pooled-backbone queue.

One forward pass (``MoCo.forward``) is one training step's computation, as in facebookresearch/moco:

1. the key encoder moves towards the query encoder (``k <- m k + (1 - m) q``, parameters only);
2. the query crops are encoded, each batch-norm group on its own (large queries, then small queries);
3. the key crops are shuffled across processes (shuffle-BN), encoded without gradient, unshuffled;
4. InfoNCE over the 1 + 4 queries of each sample, and the nearest-neighbour loss, both against the
   queues as they were BEFORE this batch (the consistent order; the seed's ``builder_ours.py`` enqueued
   first, so its neighbours came from the new backbone queue and its logits from the old one);
5. the keys of every process are gathered and enqueued into both queues (one global queue each).

Buffers: ``queue`` float ``[dim, K]`` and ``queue_backbone`` float ``[C, K]`` (L2-normalised columns),
``queue_ptr`` long ``[1]``. Writing wraps around, so K need not be a multiple of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import distributed
from . import shuffle_bn
from .config import PretrainConfig
from .encoder import Encoder, build_encoder
from .losses import contrastive_logits, info_nce, nearest_neighbour_loss, nearest_neighbours, normalize


@dataclass
class StepOutput:
    """What one forward pass computed (scalars are 0-d tensors).

    ``loss`` = ``info_nce + nn_weight * nn_loss`` is this process's mean over its own queries: the
    gradient averaging of DistributedDataParallel turns it into the mean over the global batch, so it is
    NOT multiplied or divided by the world size.
    """

    loss: torch.Tensor
    info_nce: torch.Tensor
    nn_loss: torch.Tensor
    accuracy: torch.Tensor


class MoCo(nn.Module):
    """MoCo v2 with multi-crop queries and the nearest-neighbour loss; see the module docstring.

    Args:
        config: the recipe (architecture, dims, queue size, momentum, temperature, NN loss), its ``auto``
            sizes already numbers (:func:`~.sizing.size_for_data`).
        encoder_q: the query encoder (:func:`build_encoder` by default); the key encoder starts as a copy.
        bn_splits: batch-norm groups per process (``config.resolved_bn_splits(world)``).
    """

    def __init__(self, config: PretrainConfig, encoder_q: Encoder | None = None, bn_splits: int = 1):
        super().__init__()
        if not config.is_sized:
            raise ValueError("size the queue and neighbour count for the data first (pretrain.sizing.size_for_data)")
        self.config = config
        self.bn_splits = bn_splits
        if encoder_q is None:
            encoder_q, _ = build_encoder(config.arch, config.dim, config.weights, config.seed)
        self.encoder_q = encoder_q
        self.encoder_k = Encoder(config.arch, config.dim)
        self.encoder_k.load_state_dict(self.encoder_q.state_dict())
        for parameter in self.encoder_k.parameters():
            parameter.requires_grad_(False)
        self.channels_last = False  # set by the trainer on CUDA
        generator = torch.Generator().manual_seed(config.seed)
        width = self.encoder_q.feature_dim
        queue = normalize(torch.randn(config.queue_size, config.dim, generator=generator)).T.contiguous()
        queue_backbone = normalize(torch.randn(config.queue_size, width, generator=generator)).T.contiguous()
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer("queue_backbone", queue_backbone)

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``k <- m k + (1 - m) q`` for every parameter (buffers are the key encoder's own)."""
        m = self.config.key_momentum
        for q, k in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):
            k.mul_(m).add_(q.detach(), alpha=1 - m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, features: torch.Tensor) -> None:
        """Write ``keys`` float ``[n, dim]`` and ``features`` float ``[n, C]`` (already gathered from every
        process, L2-normalised) at the pointer, wrapping around the end; advance the pointer."""
        n, size = keys.shape[0], self.queue.shape[1]
        columns = (int(self.queue_ptr) + torch.arange(n, device=keys.device)) % size
        self.queue[:, columns] = keys.T.to(self.queue.dtype)
        self.queue_backbone[:, columns] = features.T.to(self.queue_backbone.dtype)
        self.queue_ptr[0] = (int(self.queue_ptr) + n) % size

    def encode_queries(self, large: torch.Tensor, small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query crops -> (projections ``[B, Q, dim]``, pooled features ``[B, Q, C]``), both L2-normalised.

        Args:
            large: float ``[B, Lq, 3, H, W]``: the large query crops (every large crop but the key).
            small: float ``[B, S, 3, h, w]``: the small crops (S may be 0).
        """
        projections, pooled = [], []
        for large_group, small_group in zip(self._groups(large), self._groups(small), strict=True):
            per_group_q, per_group_f = [], []
            for crops in (large_group, small_group):
                b, count = crops.shape[:2]
                if count == 0:
                    continue
                features, projection = self.encoder_q(self._layout(crops.flatten(0, 1)))
                per_group_q.append(projection.reshape(b, count, -1))
                per_group_f.append(features.reshape(b, count, -1))
            projections.append(torch.cat(per_group_q, dim=1))
            pooled.append(torch.cat(per_group_f, dim=1))
        return normalize(torch.cat(projections).float()), normalize(torch.cat(pooled).float())

    @torch.no_grad()
    def encode_keys(self, keys: torch.Tensor, shuffle_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Key crops float ``[B, 3, H, W]`` -> (projections ``[B, dim]``, pooled ``[B, C]``), L2-normalised,
        computed under shuffle-BN (module docstring of :mod:`.distributed`)."""
        shuffled, unshuffle_index = shuffle_bn.shuffle(keys, shuffle_seed)
        outputs = [self.encoder_k(self._layout(group)) for group in self._groups(shuffled)]
        features = torch.cat([f for f, _ in outputs]).float()
        projection = torch.cat([p for _, p in outputs]).float()
        return (
            shuffle_bn.unshuffle(normalize(projection), unshuffle_index),
            shuffle_bn.unshuffle(normalize(features), unshuffle_index),
        )

    def forward(
        self, large: torch.Tensor, small: torch.Tensor, shuffle_seed: int, nn_weight: float | None = None
    ) -> StepOutput:
        """One training step's forward pass (module docstring).

        Args:
            large: float ``[B, large_crops, 3, H, W]``; the last large crop is the key.
            small: float ``[B, small_crops, 3, h, w]``.
            shuffle_seed: seeds the shuffle-BN permutation (the same on every process).
            nn_weight: weight of the NN loss this step (default ``config.nn_weight``; 0 during warm-up,
                when the NN loss is still computed, without gradient, for the log).
        """
        config = self.config
        nn_weight = config.nn_weight if nn_weight is None else nn_weight
        self.momentum_update()
        queries, query_features = self.encode_queries(large[:, :-1], small)
        keys, key_features = self.encode_keys(large[:, -1], shuffle_seed)
        with torch.autocast(device_type=large.device.type, enabled=False):  # losses in float32 under AMP
            loss_nce, loss_nn, accuracy = self._losses(queries, query_features, keys, nn_weight)
        loss = loss_nce + nn_weight * loss_nn if nn_weight > 0 else loss_nce
        self.enqueue(distributed.gather(keys), distributed.gather(key_features))
        return StepOutput(loss, loss_nce.detach(), loss_nn.detach(), accuracy)

    def _losses(
        self, queries: torch.Tensor, query_features: torch.Tensor, keys: torch.Tensor, nn_weight: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(InfoNCE, NN loss, accuracy) against the queues as they are now (before this batch's keys)."""
        config = self.config
        positive, negative = contrastive_logits(queries, keys, self.queue.clone())
        loss_nce, accuracy = info_nce(positive, negative, config.temperature)
        if config.nn_weight == 0:
            return loss_nce, torch.zeros((), device=negative.device), accuracy
        neighbours = nearest_neighbours(query_features.flatten(0, 1), self.queue_backbone.clone(), config.nn_topk)
        with torch.set_grad_enabled(torch.is_grad_enabled() and nn_weight > 0):
            loss_nn = nearest_neighbour_loss(negative, neighbours, config.temperature)
        return loss_nce, loss_nn, accuracy

    def _layout(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def _groups(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.chunk(batch, self.bn_splits, dim=0) if self.bn_splits > 1 else (batch,)
