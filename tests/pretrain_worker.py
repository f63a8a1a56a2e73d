"""A few MoCo training steps on a fixed synthetic global batch, in one process or one per rank under torchrun.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/pretrain_worker.py OUT
    python tests/pretrain_worker.py OUT            (or run_steps(OUT) in-process: the single-process reference)

Each process takes its rank's slice of the global batch of every step, runs the library's own training
step (``build_training_model`` + ``forward_backward``: DDP, shuffle-BN, both losses, the global queues),
records the gradients of the query encoder after DDP's averaging, steps SGD, and finally writes
``OUT/rank<R>.pt`` (gradients, losses, queues, pointer, both encoders). In a single process the batch is
split into as many batch-norm groups as the distributed run has processes, so both compute the same thing.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

from dense_retrieval.distributed import init_distributed, shutdown
from dense_retrieval.pretrain.config import OURS_CPU, MultiCropConfig
from dense_retrieval.pretrain.shuffle_bn import average_buffers_
from dense_retrieval.pretrain.step import build_training_model, forward_backward, step_seed

GLOBAL_BATCH = 8
STEPS = 3
WORLD = 2  # the distributed run's process count; the single-process reference uses as many BN groups
CONFIG = replace(
    OURS_CPU,
    crops=MultiCropConfig(large_size=32, small_size=16),
    dim=16,
    queue_size=20,  # not a multiple of the global batch: the pointer wraps around mid-batch
    nn_topk=3,
    batch_size=GLOBAL_BATCH,
    bn_splits=0,
    seed=3,
)


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's crops for the whole global batch: large ``[8, 2, 3, 32, 32]``, small ``[8, 4, 3, 16, 16]``."""
    generator = torch.Generator().manual_seed(1000 + step)
    large = torch.randn(GLOBAL_BATCH, 2, 3, 32, 32, generator=generator)
    small = torch.randn(GLOBAL_BATCH, 4, 3, 16, 16, generator=generator)
    return large, small


def run_steps(out: Path) -> Path:
    env = init_distributed("cpu")
    try:
        splits = WORLD // env.world_size
        config = replace(CONFIG, bn_splits=splits)
        built = build_training_model(config, env, splits)
        local = GLOBAL_BATCH // env.world_size
        rows = slice(env.rank * local, (env.rank + 1) * local)
        grads, losses = [], []
        for step in range(STEPS):
            large, small = global_batch(step)
            output = forward_backward(
                built.network, built.optimizer, large[rows], small[rows], step_seed(config.seed, step), config.nn_weight
            )
            grads.append(torch.cat([p.grad.flatten() for p in built.model.encoder_q.parameters()]).clone())
            losses.append([float(output.loss.detach()), float(output.info_nce), float(output.nn_loss)])
            built.optimizer.step()
        average_buffers_(built.model.encoder_q)
        average_buffers_(built.model.encoder_k)
        model = built.model
        record = {
            "world_size": env.world_size,
            "grads": torch.stack(grads),
            "losses": torch.tensor(losses),
            "queue": model.queue.clone(),
            "queue_backbone": model.queue_backbone.clone(),
            "queue_ptr": int(model.queue_ptr),
            "encoder_k": {k: v.clone() for k, v in model.encoder_k.state_dict().items()},
            "encoder_q": {k: v.clone() for k, v in model.encoder_q.state_dict().items()},
        }
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"rank{env.rank}.pt" if env.world_size > 1 else out / "single.pt"
        torch.save(record, path)
        return path
    finally:
        shutdown()


if __name__ == "__main__":
    torch.set_num_threads(1)
    run_steps(Path(sys.argv[1]))
