"""Pretraining checkpoints in the paper's layout, written atomically, read back for an exact resume.

The file is what facebookresearch/moco and the paper's ``main_ours.py`` save, so every tool that reads
those reads it unchanged (``dense-retrieval checkpoints inspect``, ``--checkpoint`` everywhere)::

    {'epoch': completed epochs, 'arch': 'resnet50',
     'state_dict': {'module.encoder_q.conv1.weight', ..., 'module.encoder_q.fc.0.weight', ...,
                    'module.encoder_k.*', 'module.queue', 'module.queue_ptr', 'module.queue_backbone'},
     'optimizer': SGD state dict (over MoCo.parameters(): encoder_q, then encoder_k),
     'pretrain': {what made it and where to resume: config, step, step_in_epoch, world size, the
                  initial weights, the data, the RNG states, the AMP scaler, versions}}

No tensor sits at the top level (the loader would take the dict for a bare state dict). The file is
written under a temporary name and renamed, so a killed run leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch

from ..data.atomic import atomic_path
from ..errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pth.tar"
FORMAT_VERSION = 1


def build_payload(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    arch: str,
    epoch: int,
    pretrain: dict,
    scaler: torch.amp.GradScaler | None = None,
) -> dict:
    """The checkpoint dict of the module docstring.

    Args:
        model: the MoCo module (not the DDP wrapper); its keys get DDP's ``module.`` prefix.
        optimizer: its state is saved as is.
        arch: the architecture name.
        epoch: completed epochs.
        pretrain: the extra record (config, steps, data ...); RNG states and versions are added here.
        scaler: the AMP gradient scaler, when one is used.
    """
    from .. import __version__

    state = {f"module.{key}": value.detach().cpu() for key, value in model.state_dict().items()}
    extra = {
        **pretrain,
        "format": FORMAT_VERSION,
        "rng": rng_state(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "versions": {"dense_retrieval": __version__, "torch": str(torch.__version__)},
    }
    return {"epoch": epoch, "arch": arch, "state_dict": state, "optimizer": optimizer.state_dict(), "pretrain": extra}


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (weights only, on the CPU).

    Raises:
        CheckpointError: the file is missing, unreadable, or was not made by ``dense-retrieval pretrain``
            (it lacks the resume record).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", hint="start without --resume")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure of torch.load is one clear message
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({error.__class__.__name__})",
            hint="the file may be truncated; delete it to start over, or restore a copy",
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("pretrain"), dict):
        raise CheckpointError(
            f"{path} was not written by `dense-retrieval pretrain` (no resume record)",
            hint="to start from its weights, pass it as --weights instead of resuming",
        )
    if payload["pretrain"].get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has resume format {payload['pretrain'].get('format')}, expected {FORMAT_VERSION}"
        )
    return payload


def model_state(payload: dict) -> dict[str, torch.Tensor]:
    """The MoCo module's state dict from a checkpoint (``module.`` prefix removed)."""
    return {key.removeprefix("module."): value for key, value in payload["state_dict"].items()}


def rng_state() -> dict:
    """torch (CPU and CUDA) and Python generator states."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
    }


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
