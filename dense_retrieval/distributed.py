"""Running under torchrun: which rank this process is, and barriers between the stages of a job.

``torchrun --nproc-per-node N [--nnodes M ...] -m dense_retrieval <command> ...`` starts one process per
rank with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in the environment. The
commands that split work (``index build``, ``features``) call :func:`session`: a gloo process group
(CPU or GPU machines alike: only barriers cross it, the data goes through files on a shared folder),
closed when the command ends. Without torchrun the session is a single rank and barriers do nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

# Rank 0 trains the coarse quantizer while the others wait at a barrier: at 1e8 segments that takes hours.
BARRIER_TIMEOUT = datetime.timedelta(hours=24)


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

    def device(self, requested: str) -> str:
        """The device this rank extracts on: ``cuda:LOCAL_RANK`` for "auto"/"cuda" when CUDA is there."""
        if self.world == 1 or requested not in ("auto", "cuda"):
            return requested
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else requested


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
