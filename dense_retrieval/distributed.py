"""The one home of process-group code: rank, world, barriers, gathers and broadcasts under torchrun.

``torchrun --nproc-per-node N [--nnodes M ...] -m dense_retrieval <command> ...`` starts one process per
rank with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in the environment. Two
ways in, one module:

- :func:`session` (``index build``, ``features``, ``davis propagate``, ``bench run``): a gloo process group
  (CPU or GPU machines alike: only barriers and small Python objects cross it, the data goes through
  files on a shared folder), closed when the command ends. Without torchrun the session is a single
  rank and every collective does nothing.
- :func:`init_distributed` (``pretrain``): NCCL when the process has a CUDA device, gloo on CPU; tensors
  cross it (:func:`gather`, :func:`broadcast_`, :func:`all_reduce_mean_`); :func:`shutdown` closes it.

Torch is imported only when a collective runs, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    import torch

# Rank 0 trains the coarse quantizer while the others wait at a barrier: at 1e8 segments that takes hours.
BARRIER_TIMEOUT = datetime.timedelta(hours=24)


def _is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mine(self, count: int) -> range:
        """The items of ``count`` this rank handles: ``rank, rank + world, ...`` (deterministic)."""
        return range(self.rank, count, self.world)

    def barrier(self) -> None:
        """Wait until every rank gets here (no-op for a single rank)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank: ``[value]`` for a single rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, value)
        return gathered

    def broadcast_object(self, value: Any, source: int = 0) -> Any:
        """Rank ``source``'s ``value`` (picklable) on every rank; ``value`` itself for a single rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value if self.rank == source else None]
        dist.broadcast_object_list(box, src=source)
        return box[0]

    def agree(self, error: BaseException | None) -> None:
        """A collective check point: raise on every rank when any rank brings an error.

        Each rank passes the error it caught (or None). The rank that failed raises its own error; the
        others raise the lowest failing rank's, so every process of the job stops with the same one line.
        """
        errors = self.gather_objects(_portable(error))
        if error is not None:
            raise error
        for failed in errors:
            if failed is not None:
                raise failed

    def device(self, requested: str) -> str:
        """The device this rank extracts on: ``cuda:LOCAL_RANK`` for "auto"/"cuda" when CUDA is there."""
        if self.world == 1 or requested not in ("auto", "cuda"):
            return requested
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else requested


def _portable(error: BaseException | None) -> BaseException | None:
    """``error`` as it can cross to another process: itself when it pickles, else a RuntimeError naming it."""
    if error is None:
        return None
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any unpicklable error is reported by its text
        return RuntimeError(f"{type(error).__name__}: {error}")


def under_torchrun() -> bool:
    """True when this process was started by torchrun with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def session() -> Iterator[Ranks]:
    """The ranks of this job; starts (and finally closes) a gloo process group under torchrun."""
    if not under_torchrun():
        yield Ranks()
        return
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    finally:
        if owned:
            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ tensor collectives
def _cpu() -> torch.device:
    import torch

    return torch.device("cpu")


@dataclass(frozen=True)
class DistEnv(Ranks):
    """A process of a tensor-parallel job (pretraining): its :class:`Ranks` and the ``device`` it computes on."""

    device: torch.device = field(default_factory=_cpu)

    @property
    def world_size(self) -> int:
        return self.world

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistEnv:
    """Start the process group when launched by torchrun with more than one process.

    Args:
        device: "auto" (the local CUDA device when present, else CPU), "cpu" or "cuda".
        timeout_minutes: how long collectives wait for a slow process (evaluation runs on rank 0 alone).
    """
    import torch
    import torch.distributed as dist

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
    if _is_initialized():
        import torch.distributed as dist

        dist.destroy_process_group()


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if _is_initialized() else 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if _is_initialized() else 0


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` ``[n, ...]`` from every process along dim 0, in rank order: ``[world * n, ...]``.

    No gradient flows through it (MoCo's keys need none). Single process: the tensor itself.
    """
    if world_size() == 1:
        return tensor
    import torch
    import torch.distributed as dist

    with torch.no_grad():
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()


def broadcast_(tensor: torch.Tensor, source: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` on every process with rank ``source``'s (in place; returned)."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.broadcast(tensor, source)
    return tensor


def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """Replace ``tensor`` by its mean over the processes (in place; returned)."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.all_reduce(tensor)
        tensor /= world_size()
    return tensor
