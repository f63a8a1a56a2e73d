"""The pretraining loop: one process, or one per device under torchrun; resumable exactly.

Per step: the crops of ``batch_size / world`` images per process (each process reads its share of the
``DistributedSampler`` order), one forward pass of :class:`~.moco.MoCo` (shuffle-BN, both losses, the
global queues), backward, DistributedDataParallel's gradient average, SGD. The learning rate follows
the paper's cosine schedule, set at the start of every epoch: ``lr * B / 256 * (1 + cos(pi * e / E)) / 2``.

Exact resume: a checkpoint holds the model (both encoders, both queues, the pointer), the optimizer,
the AMP scaler, the epoch and the step inside it, and the RNG states. Everything random is derived from
the seed and the position (a sample's crops from (seed, epoch, index), a step's shuffle from
(seed, step)), so a run killed at any point and resumed from its last checkpoint computes the same
steps as a run that was never interrupted.

Outputs (house rule 15): before any work every process checks that RUN is neither an input nor inside
or around one (the data, ``--eval-davis``, a ``--weights`` file) and that RUN holds nothing but a
previous run (:mod:`.run_folder`); the initial weights are loaded before RUN is created, so a refused
run leaves nothing behind. The main process then holds RUN locked to the end. Each checkpoint (and its
kept copy) is one commit section: Ctrl-C waits for it, then stops the run with the checkpoint on disk.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .. import distributed, progress
from ..data.outputs import check_output, locked
from ..distributed import DistEnv, init_distributed
from ..errors import InputError
from ..interrupts import commit_section
from . import shuffle_bn
from .checkpoint import build_payload, load_training_checkpoint, model_state, restore_rng_state, save_checkpoint
from .config import PretrainConfig, RunOptions
from .dataset import EpochSampler, MultiCropDataset
from .run_folder import EpochMeters, RunFolder
from .sizing import describe, queue_warning, size_for_data
from .source import scan_sources
from .step import build_training_model, cosine_lr, forward_backward, step_seed

CHART_EVERY_S = 30.0
"""Between evaluations, RUN/training.png is redrawn at an epoch's end at most this often (seconds)."""


def run_pretraining(
    data: list[str | os.PathLike],
    config: PretrainConfig,
    options: RunOptions,
    log: Callable[[str], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> dict:
    """Pretrain on ``data`` into ``options.out``; returns the run summary (also RUN/summary.json).

    Call it in every process of a torchrun job (or once without torchrun). ``log`` receives progress
    lines (epochs, evaluations), ``note`` the lines every run shows (the queue and neighbour count chosen);
    only the main process calls either.

    Raises:
        InputError: bad data, settings that do not fit the world size, an occupied run folder ...
        ConfigMismatchError: ``--resume`` of a run made with other settings.
    """
    env = init_distributed(options.device)
    with contextlib.ExitStack() as held:
        try:
            return _Run(data, config, options, env, log or (lambda _line: None), held, note).run()
        finally:
            distributed.shutdown()


def run_inputs(data: list[str | os.PathLike], config: PretrainConfig, options: RunOptions) -> list[Path]:
    """Every file and folder a run reads: the data, the ``--eval-davis`` root, a ``--weights`` file."""
    inputs = [Path(item) for item in data]
    if options.eval_davis is not None:
        inputs.append(Path(options.eval_davis))
    weights = config.weights
    if weights and not weights.startswith("random") and (os.sep in weights or Path(weights).exists()):
        inputs.append(Path(weights))
    return inputs


class _Run:
    def __init__(
        self,
        data,
        config: PretrainConfig,
        options: RunOptions,
        env: DistEnv,
        log: Callable[[str], None],
        held: contextlib.ExitStack,
        note: Callable[[str], None] | None = None,
    ):
        self.config, self.options, self.env = config, options, env
        self.log = log if env.is_main else (lambda _line: None)
        self.note = (note or log) if env.is_main else (lambda _line: None)
        check_output(options.out, run_inputs(data, config, options), kind="dir")
        config.check_world(env.world_size)
        if options.eval_davis is not None:
            _check_davis_root(options)
        self.bn_splits = config.resolved_bn_splits(env.world_size)
        self.local_batch = config.batch_size // env.world_size
        self.source = scan_sources(data, options.frame_step)
        if len(self.source) < config.batch_size:
            raise InputError(
                f"the data holds {len(self.source)} image(s), fewer than one batch of {config.batch_size}",
                hint="add images or lower --batch-size",
            )
        self.config, self.sizing = size_for_data(config, len(self.source))  # --queue-size / --nn-topk auto
        config = self.config
        if config.queue_size >= len(self.source):
            warnings.warn(queue_warning(config, len(self.source), self.sizing), stacklevel=2)
        self.folder = RunFolder(options.out)
        record = {
            "config": config.to_dict(),
            "preset": options.preset,
            "world_size": env.world_size,
            "bn_splits_per_process": self.bn_splits,
            "images": len(self.source),
            "sizing": self.sizing,
            "data": {"inputs": [str(Path(p)) for p in data], **self.source.describe()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        resuming = self.folder.check(record, options.resume, options.overwrite)
        self._build_model()  # loads (and checks) the initial weights before RUN is touched
        distributed.barrier()
        if env.is_main:
            self.folder.path.mkdir(parents=True, exist_ok=True)
            held.enter_context(locked(self.folder.path, "run folder"))
            self.folder.create(record, resuming)
        distributed.barrier()
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.resumed_meters: EpochMeters | None = None
        if resuming:
            self._resume()
        self.dataset = MultiCropDataset(self.source, config)
        self.sampler = EpochSampler(len(self.dataset), env.world_size, env.rank, config.seed)
        self.steps_per_epoch = len(self.sampler) // self.local_batch
        self.loader = DataLoader(
            self.dataset,
            batch_size=self.local_batch,
            sampler=self.sampler,
            drop_last=True,
            num_workers=options.workers,
            persistent_workers=options.workers > 0,
            pin_memory=env.device.type == "cuda",
        )
        self.evaluations: list[dict] = []
        self.charted = -math.inf

    def _build_model(self) -> None:
        built = build_training_model(
            self.config, self.env, self.bn_splits, self.options.amp, self.options.channels_last
        )
        self.model, self.network, self.optimizer = built.model, built.network, built.optimizer
        self.scaler, self.amp_dtype, self.init_record = built.scaler, built.amp_dtype, built.init

    def _resume(self) -> None:
        payload = load_training_checkpoint(self.folder.checkpoint)
        self.model.load_state_dict(model_state(payload))
        self.optimizer.load_state_dict(payload["optimizer"])
        extra = payload["pretrain"]
        if self.scaler is not None and extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        self.epoch, self.step_in_epoch, self.global_step = payload["epoch"], extra["step_in_epoch"], extra["step"]
        restore_rng_state(extra["rng"])
        if self.env.is_main:
            self.folder.truncate_log(self.global_step, self.epoch)
            self.resumed_meters = EpochMeters()
            for entry in self.folder.read_log():
                if entry.get("event") == "step" and entry.get("epoch") == self.epoch:
                    self.resumed_meters.add(entry)
        self.log(f"resuming {self.folder.path} at epoch {self.epoch}, step {self.global_step}")

    def run(self) -> dict:
        config, options = self.config, self.options
        start, images = time.perf_counter(), 0
        stopped = False
        self.log(
            f"pretrain: {config.arch}, {len(self.source)} images, {self.env.world_size} process(es) x "
            f"{self.local_batch} images, {self.steps_per_epoch} steps/epoch, {config.epochs} epochs, "
            f"on {self.env.device}"
        )
        self.note(f"pretrain: {describe(self.sizing)}")
        while self.epoch < config.epochs and not stopped:
            for group in self.optimizer.param_groups:
                group["lr"] = cosine_lr(config, self.epoch)
            self.sampler.set_epoch(self.epoch, skip=self.step_in_epoch * self.local_batch)
            meters, self.resumed_meters = self.resumed_meters or EpochMeters(), None
            bar = self._bar()
            tick = time.perf_counter()
            for batch in self.loader:
                metrics = self._step(batch)
                now = time.perf_counter()
                metrics["images_per_s"] = round(self.config.batch_size / max(now - tick, 1e-9), 2)
                tick = now
                images += config.batch_size
                meters.add(metrics)
                at_epoch_end = self.step_in_epoch == self.steps_per_epoch
                if options.max_steps and self.global_step >= options.max_steps:
                    stopped = True
                if not at_epoch_end and (stopped or _due(self.global_step, options.checkpoint_every)):
                    self._save()  # before the log line: a logged step that was due is on disk
                if self.env.is_main:
                    self.folder.append_log({"event": "step", **metrics})
                if bar is not None:
                    bar.set_postfix(loss=f"{metrics['loss']:.3f}", img_s=metrics["images_per_s"])
                    bar.update()
                if stopped:
                    break
            if bar is not None:
                bar.close()
            if self.step_in_epoch == self.steps_per_epoch:
                self._end_epoch(meters)
        self._chart(force=True)
        return self._summary(time.perf_counter() - start, images, stopped)

    def _step(self, batch: dict) -> dict:
        config, device = self.config, self.env.device
        large = batch["large"].to(device, non_blocking=True)
        small = batch["small"].to(device, non_blocking=True)
        nn_weight = config.nn_weight if self.epoch >= config.nn_warmup_epochs else 0.0
        output = forward_backward(
            self.network,
            self.optimizer,
            large,
            small,
            step_seed(config.seed, self.global_step),
            nn_weight,
            self.scaler,
            self.amp_dtype,
        )
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.global_step += 1
        self.step_in_epoch += 1
        stats = torch.stack(
            [
                output.loss.detach().double(),
                output.info_nce.double(),
                output.nn_loss.double(),
                output.accuracy.double(),
                batch["fallbacks"].sum().to(device, torch.float64),
                batch["unreadable"].sum().to(device, torch.float64),
            ]
        )
        stats = distributed.all_reduce_mean_(stats).cpu()
        values, counts = stats[:4], stats[4:] * self.env.world_size
        return {
            "step": self.global_step,
            "epoch": self.epoch,
            "loss": round(float(values[0]), 5),
            "info_nce": round(float(values[1]), 5),
            "nn_loss": round(float(values[2]), 5),
            "nn_weight": nn_weight,
            "accuracy": round(float(values[3]), 3),
            "lr": self.optimizer.param_groups[0]["lr"],
            "fallbacks": int(counts[0]),
            "unreadable": int(counts[1]),
        }

    def _end_epoch(self, meters: EpochMeters) -> None:
        options = self.options
        self.epoch += 1
        self.step_in_epoch = 0
        shuffle_bn.average_buffers_(self.model.encoder_q)
        shuffle_bn.average_buffers_(self.model.encoder_k)
        keep = options.keep_every and self.epoch % options.keep_every == 0
        path = self._save(keep_as=self.folder.epoch_checkpoint(self.epoch) if keep else None)
        summary = {"event": "epoch", "epoch_done": self.epoch, "step": self.global_step, **meters.means()}
        if self.env.is_main:
            self.folder.append_log(summary)
        self.log(
            f"epoch {self.epoch}/{self.config.epochs}: loss {summary['loss']:.4f} (InfoNCE {summary['info_nce']:.4f}, "
            f"NN {summary['nn_loss']:.4f}), accuracy {summary['accuracy']:.1f}%, lr {summary['lr']:.4g}, "
            f"{summary['images_per_s']:.1f} images/s"
        )
        last = self.epoch == self.config.epochs or self.global_step == options.max_steps
        if options.eval_davis is not None and (self.epoch % max(options.eval_every, 1) == 0 or last):
            self._evaluate(path)
            self._chart(force=True)
        else:
            self._chart()

    def _evaluate(self, checkpoint: Path) -> None:
        from .evaluation import evaluate_checkpoint_on_davis

        if self.env.is_main:
            options = self.options
            scores = evaluate_checkpoint_on_davis(
                checkpoint,
                self.config.arch,
                options.eval_davis,
                self.folder.path / "eval",
                options.eval_year,
                options.eval_set,
                str(self.env.device),
            )
            entry = {"event": "eval", "epoch_done": self.epoch, "step": self.global_step, **scores}
            self.evaluations.append(entry)
            self.folder.append_log(entry)
            self.log(f"epoch {self.epoch}: DAVIS {options.eval_year} {options.eval_set} J&F {scores['J&F']:.3f}")
        distributed.barrier()

    def _chart(self, force: bool = False) -> None:
        """Redraw RUN/training.png (main process): when ``force``d, else at most every ``CHART_EVERY_S``."""
        now = time.monotonic()
        if not self.env.is_main or (not force and now - self.charted < CHART_EVERY_S):
            return
        config = self.config
        nn = f"NN top-{config.nn_topk} x {config.nn_weight:g}" if config.nn_weight else "no NN loss"
        title = f"{self.options.preset or config.arch}: {len(self.source)} images, K = {config.queue_size}, {nn}"
        self.folder.write_chart(config.queue_size, title)
        self.charted = now

    def _save(self, keep_as: Path | None = None) -> Path:
        """Write the checkpoint (and its kept copy ``keep_as``) as one commit section (main process)."""
        path = self.folder.checkpoint
        if self.env.is_main:
            extra = {
                "config": self.config.to_dict(),
                "preset": self.options.preset,
                "step": self.global_step,
                "step_in_epoch": self.step_in_epoch,
                "world_size": self.env.world_size,
                "bn_splits_per_process": self.bn_splits,
                "init": self.init_record,
                "images": len(self.source),
            }
            payload = build_payload(self.model, self.optimizer, self.config.arch, self.epoch, extra, self.scaler)
            with commit_section():
                save_checkpoint(path, payload)
                if keep_as is not None:
                    _keep_copy(path, keep_as)
        distributed.barrier()
        return path

    def _bar(self):
        if not (self.env.is_main and progress.is_enabled()):
            return None
        from tqdm import tqdm

        return tqdm(
            total=self.steps_per_epoch,
            initial=self.step_in_epoch,
            desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
            unit="step",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def _summary(self, seconds: float, images: int, stopped: bool) -> dict:
        entries = self.folder.read_log() if self.env.is_main else []
        steps = [e for e in entries if e.get("event") == "step"]
        summary = {
            "out": str(self.folder.path),
            "checkpoint": str(self.folder.checkpoint),
            "preset": self.options.preset,
            "config": self.config.to_dict(),
            "world_size": self.env.world_size,
            "device": str(self.env.device),
            "epochs_done": self.epoch,
            "steps_done": self.global_step,
            "stopped_at_max_steps": stopped,
            "images": len(self.source),
            "data": self.source.describe(),
            "seconds_this_session": round(seconds, 1),
            "images_per_s_this_session": round(images / seconds, 2) if seconds and images else None,
            "last_step": steps[-1] if steps else None,
            "evaluations": [e for e in entries if e.get("event") == "eval"],
        }
        if self.env.is_main:
            self.folder.write_summary(summary)
        return summary


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _check_davis_root(options: RunOptions) -> None:
    """A bad ``--eval-davis`` root is refused now, not after the first epoch."""
    from ..data.davis import DavisDataset

    DavisDataset(options.eval_davis, year=options.eval_year, split=options.eval_set)


def _keep_copy(source: Path, target: Path) -> None:
    """``target`` becomes a copy of ``source`` (a hard link where possible: the checkpoint is later replaced
    by a new file, never rewritten in place)."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
