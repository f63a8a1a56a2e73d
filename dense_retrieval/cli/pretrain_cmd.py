"""`dense-retrieval pretrain`: the paper's multi-crop MoCo on your own images, one process or torchrun."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from ..pretrain.config import ARCHITECTURES, AUTO, PRESETS, RunOptions
from . import groups
from .common import DeviceOption, JsonOption, info, note, print_json, start_output

PRESET_CHOICES = tuple(PRESETS)
_DEFAULTS = RunOptions(out=Path("."))
_RECIPE = "Recipe (each overrides the preset)"
_RUN = "Run"

_HELP = """Pretrain a backbone by the paper's recipe: MoCo v2 + constrained multi-crop + AutoAugment + NN loss.

DATA: image files, folders of images (walked recursively; frame folders are folders of images), video
files (every --frame-step-th frame) and DAVIS roots (their JPEGImages/480p frames). Unreadable files are
skipped and counted.

RUN (--out) receives config.json, training.png (loss, InfoNCE accuracy and --eval-davis J&F against the
epoch, redrawn as the run goes), log.jsonl (one JSON line per step: loss, InfoNCE accuracy, NN loss, lr,
images/s; one per epoch; one per DAVIS evaluation), checkpoint.pth.tar (the paper's MoCo layout, written
atomically every epoch and every --checkpoint-every steps) and summary.json. The checkpoint works as is
with `davis propagate --checkpoint`, `index build --checkpoint` and `checkpoints inspect`. A killed run
continues exactly where its last checkpoint left it with --resume.

Presets: ours (the paper: ResNet-50, 2x160 + 4x96 px crops, constrained, AutoAugment on every crop but
the key, NN loss top-20 x 0.4, T 0.2, m 0.995, K 65536, lr 0.3 per 256 images, cosine, 800 epochs);
moco-v2 (the paper's MoCo baseline: two 224 px crops, m 0.999); ours-cpu and moco-v2-cpu (the same
shapes at 64/32 px on ResNet-18 with K 2048, for CPUs; README figures).

Queue and neighbours sized to the data (--queue-size auto, --nn-topk auto: every preset's default): a
queue not smaller than the data holds each image's own earlier keys as negatives and the run fails, so
the queue holds at most the paper's share of the images (65536 keys for COCO's 118287: 0.554), in whole
global batches, at least one, at most the preset's K; the NN loss takes the preset's share of that queue
(ours: 20 of 65536), at least 1 neighbour. The choice is printed at the start and recorded in
RUN/config.json ("sizing"); a number given wins (with a warning when the queue is not below the images).

Several processes: launch with torchrun (gloo on CPU, NCCL on GPUs); --batch-size is the global batch,
keys of every process fill one global queue, batch norm of the keys is shuffled across processes. In a
single process the batch is split into 2 batch-norm groups instead (--bn-splits).

\b
Examples:
  dense-retrieval pretrain photos/ clips/ --out runs/mine --preset ours-cpu
  torchrun --nproc-per-node 8 -m dense_retrieval pretrain coco/train2017 --out runs/ours --preset ours
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
      -m dense_retrieval pretrain coco/train2017 --out /shared/runs/ours --preset ours --resume
"""


@groups.root.command("pretrain", help=_HELP)
def pretrain(
    data: Annotated[list[Path], typer.Argument(help="Images, folders, videos, DAVIS roots.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The run folder.")],
    preset: Annotated[str, typer.Option("--preset", help=f"One of {', '.join(PRESET_CHOICES)}.")] = "ours",
    arch: Annotated[
        str | None, typer.Option("--arch", help=f"{', '.join(ARCHITECTURES)}.", rich_help_panel=_RECIPE)
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            "--weights",
            help="Initial weights: random, random:SEED, a registry name or a checkpoint file "
            "(continued pretraining, e.g. mobilenet_v2-imagenet).",
            rich_help_panel=_RECIPE,
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, rich_help_panel=_RECIPE)] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Global batch.", rich_help_panel=_RECIPE)
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Learning rate per 256 images.", rich_help_panel=_RECIPE)
    ] = None,
    queue_size: Annotated[
        str | None,
        typer.Option(
            "--queue-size",
            metavar="N|auto",
            help="Keys in the queue. auto (every preset): whole global batches up to 0.554 x the image count "
            "(the paper's 65536 keys for COCO's 118287 images), at least one batch, at most the preset's K.",
            rich_help_panel=_RECIPE,
        ),
    ] = None,
    key_momentum: Annotated[float | None, typer.Option("--key-momentum", rich_help_panel=_RECIPE)] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", rich_help_panel=_RECIPE)] = None,
    nn_topk: Annotated[
        str | None,
        typer.Option(
            "--nn-topk",
            metavar="N|auto",
            help="Neighbours taken as positives by the NN loss. auto (every preset): the preset's share of the "
            "queue (20 of 65536), at least 1.",
            rich_help_panel=_RECIPE,
        ),
    ] = None,
    nn_weight: Annotated[
        float | None, typer.Option("--nn-weight", help="0 switches the NN loss off.", rich_help_panel=_RECIPE)
    ] = None,
    nn_warmup_epochs: Annotated[
        int | None,
        typer.Option("--nn-warmup-epochs", min=0, help="NN loss only from this epoch on.", rich_help_panel=_RECIPE),
    ] = None,
    large_size: Annotated[int | None, typer.Option("--large-size", min=8, rich_help_panel=_RECIPE)] = None,
    small_size: Annotated[int | None, typer.Option("--small-size", min=8, rich_help_panel=_RECIPE)] = None,
    bn_splits: Annotated[
        int | None,
        typer.Option("--bn-splits", min=0, help="Batch-norm groups per process (0: auto).", rich_help_panel=_RECIPE),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", rich_help_panel=_RECIPE)] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the run in --out (fresh start if none).", rich_help_panel=_RUN),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start over in an --out that holds a run.", rich_help_panel=_RUN)
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Data-loading processes per process.", rich_help_panel=_RUN)
    ] = _DEFAULTS.workers,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", min=0, help="Also checkpoint every N steps.", rich_help_panel=_RUN)
    ] = _DEFAULTS.checkpoint_every,
    keep_every: Annotated[
        int, typer.Option("--keep-every", min=0, help="Keep a copy every N epochs.", rich_help_panel=_RUN)
    ] = _DEFAULTS.keep_every,
    max_steps: Annotated[
        int,
        typer.Option("--max-steps", min=0, help="Stop (with a checkpoint) after N steps.", rich_help_panel=_RUN),
    ] = _DEFAULTS.max_steps,
    eval_davis: Annotated[
        Path | None,
        typer.Option("--eval-davis", help="DAVIS root scored (CRW J&F) during training.", rich_help_panel=_RUN),
    ] = None,
    eval_every: Annotated[
        int, typer.Option("--eval-every", min=1, help="Epochs.", rich_help_panel=_RUN)
    ] = _DEFAULTS.eval_every,
    eval_year: Annotated[str, typer.Option("--eval-year", rich_help_panel=_RUN)] = _DEFAULTS.eval_year,
    eval_set: Annotated[str, typer.Option("--eval-set", rich_help_panel=_RUN)] = _DEFAULTS.eval_set,
    frame_step: Annotated[
        int, typer.Option("--frame-step", min=1, help="Every N-th frame of videos.", rich_help_panel=_RUN)
    ] = _DEFAULTS.frame_step,
    amp: Annotated[
        bool, typer.Option("--amp/--no-amp", help="Mixed precision (CUDA).", rich_help_panel=_RUN)
    ] = _DEFAULTS.amp,
    channels_last: Annotated[
        bool, typer.Option("--channels-last/--no-channels-last", help="(CUDA).", rich_help_panel=_RUN)
    ] = _DEFAULTS.channels_last,
    device: DeviceOption = _DEFAULTS.device,
    json_output: JsonOption = False,
) -> None:
    start_output(json_output)
    from ..pretrain.config import get_preset
    from ..pretrain.trainer import run_pretraining

    config = get_preset(preset)
    crops = {k: v for k, v in {"large_size": large_size, "small_size": small_size}.items() if v is not None}
    if crops:
        config = replace(config, crops=replace(config.crops, **crops))
    overrides = {
        "arch": arch,
        "weights": weights,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "queue_size": _auto_or_count(queue_size, "--queue-size"),
        "key_momentum": key_momentum,
        "temperature": temperature,
        "nn_topk": _auto_or_count(nn_topk, "--nn-topk"),
        "nn_weight": nn_weight,
        "nn_warmup_epochs": nn_warmup_epochs,
        "bn_splits": bn_splits,
        "seed": seed,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    options = RunOptions(
        out=out,
        resume=resume,
        overwrite=overwrite,
        workers=workers,
        device=device,
        amp=amp,
        channels_last=channels_last,
        checkpoint_every=checkpoint_every,
        keep_every=keep_every,
        max_steps=max_steps,
        eval_davis=eval_davis,
        eval_every=eval_every,
        eval_year=eval_year,
        eval_set=eval_set,
        frame_step=frame_step,
        preset=preset,
    )
    summary = run_pretraining(list(data), config, options, log=info, note=note)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if json_output:
        print_json(summary)
        return
    last = summary["last_step"] or {}
    typer.echo(
        f"{summary['epochs_done']}/{config.epochs} epochs, {summary['steps_done']} steps; last loss "
        f"{last.get('loss', float('nan')):.4f}; checkpoint {summary['checkpoint']} "
        f"(use: dense-retrieval davis propagate --checkpoint {summary['checkpoint']} ...)"
    )


def _auto_or_count(value: str | None, option: str) -> int | str | None:
    """``auto``, a whole number >= 1, or None (the preset's value); anything else is a usage error."""
    if value is None or value == AUTO:
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise typer.BadParameter(f"{value!r} is neither {AUTO!r} nor a whole number of at least 1", param_hint=option)
    return number
