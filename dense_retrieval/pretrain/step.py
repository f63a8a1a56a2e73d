"""One training step's pieces, shared by the trainer and the tests: the model, optimizer and DDP wrapper of
one process, forward + backward, the schedule and the per-step shuffle seed.

AMP (CUDA only): autocast to bfloat16 where the GPU supports it, else float16 with a gradient scaler; the
losses are computed in float32 either way (``MoCo.forward``). Channels-last memory format on CUDA only.
On the CPU everything is float32, contiguous NCHW, deterministic.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..distributed import DistEnv
from .config import PretrainConfig
from .encoder import build_encoder
from .moco import MoCo, StepOutput


def step_seed(seed: int, step: int) -> int:
    """The shuffle-BN seed of global step ``step``."""
    return int(np.random.SeedSequence([seed, step, 0, 1]).generate_state(1)[0])


def cosine_lr(config: PretrainConfig, epoch: int) -> float:
    """The paper's schedule: the scaled peak lr times ``(1 + cos(pi * epoch / epochs)) / 2``."""
    return config.scaled_lr() * 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))


def forward_backward(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    large: torch.Tensor,
    small: torch.Tensor,
    shuffle_seed: int,
    nn_weight: float,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
) -> StepOutput:
    """Zero the gradients, run the forward pass of ``model`` (MoCo or its DDP wrapper), backward.

    The caller steps the optimizer (``scaler.step(optimizer)`` under float16 AMP).
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=large.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        output = model(large, small, shuffle_seed, nn_weight)
    (scaler.scale(output.loss) if scaler is not None else output.loss).backward()
    return output


@dataclass
class TrainingModel:
    """The pieces of one process's training step.

    Attributes:
        model: the MoCo module (what checkpoints hold).
        network: what the step calls: ``model`` itself, or its DistributedDataParallel wrapper.
        optimizer: SGD over ``model.parameters()`` (the key encoder's take no gradient).
        scaler: the gradient scaler of float16 AMP, else None.
        amp_dtype: the autocast dtype on CUDA with AMP, else None.
        init: where the initial weights came from.
    """

    model: MoCo
    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    amp_dtype: torch.dtype | None
    init: dict


def build_training_model(
    config: PretrainConfig, env: DistEnv, bn_splits: int, amp: bool = True, channels_last: bool = True
) -> TrainingModel:
    """MoCo on ``env.device``, its optimizer, AMP and channels-last on CUDA, DDP when distributed.

    DDP does not copy rank 0's buffers at each forward (``broadcast_buffers=False``): the queues are kept
    identical by gathering the keys of every process (not by copying rank 0's each step), and batch-norm
    statistics stay per process until a checkpoint averages them.
    """
    encoder, init = build_encoder(config.arch, config.dim, config.weights, config.seed)
    model = MoCo(config, encoder, bn_splits).to(env.device)
    cuda = env.device.type == "cuda"
    if cuda and channels_last:
        model.to(memory_format=torch.channels_last)
        model.channels_last = True
    amp_dtype = None
    if cuda and amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.scaled_lr(), momentum=config.sgd_momentum, weight_decay=config.weight_decay
    )
    network: torch.nn.Module = model
    if env.distributed:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device.index] if cuda else None, **_no_buffer_broadcast()
        )
    return TrainingModel(model, network, optimizer, scaler, amp_dtype, init)


def _no_buffer_broadcast() -> dict:
    """DDP's switch that stops copying rank 0's buffers at every forward (renamed in recent torch)."""
    parameters = inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in parameters else {"broadcast_buffers": False}
