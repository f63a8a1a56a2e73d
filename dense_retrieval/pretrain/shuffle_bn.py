"""Shuffle-BN (MoCo, He et al. 2020, Sec. 3.3) and the averaging of batch-norm buffers across processes.

The key images of the global batch are gathered from every process, permuted by one permutation that all
processes agree on, and split into ``world x splits`` equal groups; each process encodes its ``splits``
groups, each group under its own batch statistics, and the keys are gathered again and put back into the
original order. The permutation is drawn from a generator seeded by the step (all processes draw the same
one) and broadcast from rank 0 all the same, so the processes cannot drift apart. The process group and
its collectives are :mod:`dense_retrieval.distributed`'s; without torchrun every function here is the
single-process identity.
"""

from __future__ import annotations

import torch

from ..distributed import all_reduce_mean_, broadcast_, gather, rank, world_size


def shuffle_permutation(total: int, seed: int, device: torch.device) -> torch.Tensor:
    """The permutation of ``total`` samples for one step: drawn from ``seed``, identical on every process."""
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.randperm(total, generator=generator).to(device)
    return broadcast_(permutation)


@torch.no_grad()
def shuffle(images: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's share of the globally shuffled batch.

    Args:
        images: float ``[n, ...]``, this process's samples (n equal on every process).
        seed: the step's shuffle seed (the same on every process).

    Returns:
        (``[n, ...]``: samples ``permutation[rank * n : (rank + 1) * n]`` of the gathered batch,
        ``unshuffle``: long ``[world * n]``, the inverse permutation for :func:`unshuffle`).
    """
    gathered = gather(images)
    permutation = shuffle_permutation(gathered.shape[0], seed, images.device)
    n, r = images.shape[0], rank()
    return gathered[permutation[r * n : (r + 1) * n]], torch.argsort(permutation)


@torch.no_grad()
def unshuffle(outputs: torch.Tensor, unshuffle_index: torch.Tensor) -> torch.Tensor:
    """Undo :func:`shuffle`: gather every process's outputs ``[n, ...]`` and return this process's own
    samples ``[n, ...]`` in their original order."""
    gathered = gather(outputs)[unshuffle_index]
    n, r = outputs.shape[0], rank()
    return gathered[r * n : (r + 1) * n]


@torch.no_grad()
def average_buffers_(module: torch.nn.Module) -> None:
    """Average the floating-point buffers (batch-norm running statistics) of ``module`` over the processes.

    Training never reads them (batch norm uses batch statistics in training mode); the checkpoint and
    evaluation do, and averaging makes every process hold the same model.
    """
    if world_size() == 1:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            all_reduce_mean_(buffer)
