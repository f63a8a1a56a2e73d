"""torch.distributed under torchrun: process group, gathers, and the shuffle of shuffle-BN.

``init_distributed()`` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...)
and starts the process group: NCCL when the process has a CUDA device, gloo on CPU. Without torchrun
(no WORLD_SIZE, or 1) nothing is started and every helper here acts as the single-process identity.

Shuffle-BN (MoCo, He et al. 2020, Sec. 3.3): the key images of the global batch are gathered from every
process, permuted by one permutation that all processes agree on, and split into ``world x splits``
equal groups; each process encodes its ``splits`` groups, each group under its own batch statistics,
and the keys are gathered again and put back into the original order. The permutation is drawn from a
generator seeded by the step (all processes draw the same one) and broadcast from rank 0 all the same,
so the processes cannot drift apart.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import InputError


@dataclass(frozen=True)
class DistEnv:
    """This process's place: ``rank`` of ``world_size``; ``device`` it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistEnv:
    """Start the process group when launched by torchrun with more than one process.

    Args:
        device: "auto" (the local CUDA device when present, else CPU), "cpu" or "cuda".
        timeout_minutes: how long collectives wait for a slow process (evaluation runs on rank 0 alone).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but torch sees no CUDA device", hint="use --device cpu")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}", hint="use auto, cpu or cuda")
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if target.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes),
            **({"device_id": target} if target.type == "cuda" else {}),
        )
    return DistEnv(rank, world_size, local_rank, target)


def shutdown() -> None:
    """Leave the process group (when one was started)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@torch.no_grad()
def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` ``[n, ...]`` from every process along dim 0, in rank order: ``[world * n, ...]``.

    No gradient flows through it (MoCo's keys need none). Single process: the tensor itself.
    """
    if world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast_(tensor: torch.Tensor, source: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` on every process with rank ``source``'s (in place; returned)."""
    if world_size() > 1:
        dist.broadcast(tensor, source)
    return tensor


def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """Replace ``tensor`` by its mean over the processes (in place; returned)."""
    if world_size() > 1:
        dist.all_reduce(tensor)
        tensor /= world_size()
    return tensor


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
