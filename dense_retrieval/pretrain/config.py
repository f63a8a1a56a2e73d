"""Pretraining settings: frozen dataclasses and the named presets (torch-free, so `--help` stays fast).

``OURS`` is the recipe of Van Gansbeke et al., "Revisiting Contrastive Methods for Unsupervised Learning
of Visual Representations" (NeurIPS 2021), as run by wvangansbeke/Revisiting-Contrastive-SSL
``scripts/ours_coco_800ep.sh``: MoCo v2 with 2 x 160 + 4 x 96 px crops, the small crops constrained to
overlap the key crop, AutoAugment on every crop but the key, a nearest-neighbour loss (top-20, weight
0.4), T = 0.2, key momentum 0.995, lr 0.3 for a batch of 256, cosine schedule. ``MOCO_V2`` is that
paper's MoCo baseline (``scripts/moco_coco_800ep.sh``: two 224 px crops, MoCo v2 augmentations,
T = 0.2, m = 0.999, lr 0.3); facebookresearch/moco's own ImageNet runs use lr 0.03.

The ``-cpu`` presets keep each recipe's shape (crop counts, scale ranges, constrained crops,
augmentations, losses) at small crop sizes, a small network and a small queue, for laptops and CI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..backbone.specs import ARCHITECTURES as _SPECS
from ..errors import InputError

AUTO = "auto"
"""The value of ``queue_size`` / ``nn_topk`` that sizes them to the data (:mod:`.sizing`), every preset's default."""

ARCHITECTURES = tuple(name for name, spec in _SPECS.items() if not spec.is_vit)
"""The networks MoCo pretraining supports: every CNN of the architecture table (ViTs are not MoCo v2 encoders)."""


@dataclass(frozen=True)
class MultiCropConfig:
    """How one image becomes the crops of one training sample.

    Crops ``0 .. large_crops - 2`` are large queries, crop ``large_crops - 1`` is the key (the paper's
    crop 1), crops ``large_crops ..`` are the small queries. Every crop is a random resized crop
    (torchvision's ``RandomResizedCrop`` sampling: area fraction in ``*_scale``, aspect ratio in
    ``ratio`` on a log scale, bilinear, antialiased).

    Attributes:
        large_crops: number of large crops (at least 2: one query and the key).
        large_size: side of the large crops in pixels (paper 160; MoCo v2 224).
        large_scale: (min, max) area fraction of the image a large crop covers (0.2, 1.0).
        small_crops: number of small query crops (paper 4; MoCo v2 0).
        small_size: side of the small crops in pixels (paper 96).
        small_scale: (min, max) area fraction of a small crop (0.05, 0.14).
        ratio: (min, max) aspect ratio w / h of every crop (3/4, 4/3).
        constrained: each small crop must overlap the key crop by at least ``min_overlap`` of its own
            area; ``tries`` attempts, then an unconstrained crop (counted as a fallback).
        min_overlap: the overlap fraction (paper 0.1).
        tries: attempts before the fallback (paper 10).
    """

    large_crops: int = 2
    large_size: int = 160
    large_scale: tuple[float, float] = (0.2, 1.0)
    small_crops: int = 4
    small_size: int = 96
    small_scale: tuple[float, float] = (0.05, 0.14)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    constrained: bool = True
    min_overlap: float = 0.1
    tries: int = 10

    def __post_init__(self) -> None:
        if self.large_crops < 2:
            raise InputError(f"large_crops must be at least 2 (a query and the key), got {self.large_crops}")
        if self.small_crops < 0:
            raise InputError(f"small_crops must be 0 or more, got {self.small_crops}")
        for name in ("large_size", "small_size", "tries"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("large_scale", "small_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high <= 1:
                raise InputError(f"{name} must satisfy 0 < min <= max <= 1, got {(low, high)}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise InputError(f"ratio must satisfy 0 < min <= max, got {self.ratio}")
        if not 0 <= self.min_overlap <= 1:
            raise InputError(f"min_overlap must lie in [0, 1], got {self.min_overlap}")

    @property
    def key_index(self) -> int:
        """Index of the key crop: the last large crop."""
        return self.large_crops - 1

    @property
    def total(self) -> int:
        return self.large_crops + self.small_crops


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides the weights a pretraining run produces (house rule 4).

    Runtime choices that do not change the result (workers, device, checkpoint frequency, logging)
    are arguments of :class:`~dense_retrieval.pretrain.trainer.Trainer`, not fields here.

    Attributes:
        arch: "resnet18", "resnet50" or "mobilenet_v2" (torchvision definitions; the MLP head is ``fc``).
        weights: initialisation of the query encoder: "random" / "random:SEED", a registry name
            (``dense-retrieval checkpoints list``) or a checkpoint file (continued pretraining).
        crops: the multi-crop geometry.
        auto_augment_crops: indices of the crops that get the 50/50 choice between [flip + AutoAugment
            (ImageNet policy)] and the MoCo v2 augmentations; the others get MoCo v2's only. The paper:
            every crop but the key, (0, 2, 3, 4, 5).
        dim: projection dimension (128).
        queue_size: K, keys kept as negatives, or "auto" (every preset's default): ``recipe_queue_size``
            when the data are large enough, else a share of the image count in whole global batches
            (:mod:`.sizing`; decided when the run has counted its images). Any number works (the pointer
            wraps around).
        recipe_queue_size: the recipe's K on data large enough (the paper: 65536 for COCO's 118k images).
        key_momentum: m of the key encoder's moving average (paper 0.995, MoCo v2 0.999).
        temperature: T of both losses (0.2).
        nn_topk: neighbours taken from the pooled-backbone queue as positives of the NN loss, or "auto"
            (every preset's default): the recipe's share of the queue, at least a floor (:mod:`.sizing`).
        recipe_nn_topk: the recipe's neighbour count at ``recipe_queue_size`` (the paper: 20).
        nn_weight: weight of the NN loss in the total (0.4); 0 switches it off.
        nn_warmup_epochs: the NN loss counts only from this epoch on (the later ``*_warmup`` scripts
            use 20; the published "Ours" numbers use 0).
        epochs: epochs of the cosine schedule.
        batch_size: global batch (all processes together).
        lr: learning rate for a global batch of ``lr_reference_batch`` (scaled linearly for others).
        lr_reference_batch: 256.
        sgd_momentum: 0.9.
        weight_decay: 1e-4.
        bn_splits: batch-norm groups per process: each group of samples is normalised on its own, for
            queries and (after the cross-process shuffle) keys. 0 = automatic: 2 in a single process
            (split-batch BN standing in for shuffle-BN across GPUs), 1 per process under torchrun
            (MoCo's shuffle-BN).
        seed: seeds initialisation, data order, crops, augmentations and the shuffle of shuffle-BN.
    """

    arch: str = "resnet50"
    weights: str = "random"
    crops: MultiCropConfig = field(default_factory=MultiCropConfig)
    auto_augment_crops: tuple[int, ...] = (0, 2, 3, 4, 5)
    dim: int = 128
    queue_size: int | str = AUTO
    recipe_queue_size: int = 65536
    key_momentum: float = 0.995
    temperature: float = 0.2
    nn_topk: int | str = AUTO
    recipe_nn_topk: int = 20
    nn_weight: float = 0.4
    nn_warmup_epochs: int = 0
    epochs: int = 800
    batch_size: int = 256
    lr: float = 0.3
    lr_reference_batch: int = 256
    sgd_momentum: float = 0.9
    weight_decay: float = 1e-4
    bn_splits: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise InputError(f"unknown architecture {self.arch!r}", hint=f"choose one of {', '.join(ARCHITECTURES)}")
        bad = [i for i in self.auto_augment_crops if not 0 <= i < self.crops.total]
        if bad:
            raise InputError(
                f"auto_augment_crops {bad} are not crops of this recipe (crops 0..{self.crops.total - 1})",
                hint=f"crop {self.crops.key_index} is the key; the paper augments all others",
            )
        for name in ("queue_size", "nn_topk"):
            value = getattr(self, name)
            if value != AUTO and (isinstance(value, bool) or not isinstance(value, int)):
                raise InputError(f"{name} must be a whole number or {AUTO!r}, got {value!r}")
        positive = ("dim", "epochs", "batch_size", "lr_reference_batch", "recipe_queue_size", "recipe_nn_topk")
        positive += tuple(name for name in ("queue_size", "nn_topk") if getattr(self, name) != AUTO)
        for name in positive:
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.recipe_nn_topk > self.recipe_queue_size:
            raise InputError(f"recipe_nn_topk {self.recipe_nn_topk} exceeds recipe_queue_size {self.recipe_queue_size}")
        if self.is_sized and self.nn_weight > 0 and self.nn_topk > self.queue_size:
            raise InputError(
                f"nn_topk {self.nn_topk} exceeds the queue size {self.queue_size}",
                hint="lower --nn-topk or leave it to auto",
            )
        if not 0 <= self.key_momentum < 1:
            raise InputError(f"key_momentum must lie in [0, 1), got {self.key_momentum}")
        for name in ("temperature", "lr"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("nn_weight", "weight_decay", "sgd_momentum", "nn_warmup_epochs", "bn_splits"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must not be negative, got {getattr(self, name)}")

    @property
    def is_sized(self) -> bool:
        """Whether the queue size and neighbour count are numbers (not ``auto``): what the model needs."""
        return self.queue_size != AUTO and self.nn_topk != AUTO

    @property
    def queries_per_sample(self) -> int:
        """Query crops per image: every large crop but the key, plus the small crops (paper: 1 + 4)."""
        return self.crops.large_crops - 1 + self.crops.small_crops

    def scaled_lr(self) -> float:
        """The peak learning rate for this batch: ``lr * batch_size / lr_reference_batch``."""
        return self.lr * self.batch_size / self.lr_reference_batch

    def resolved_bn_splits(self, world_size: int) -> int:
        """Batch-norm groups per process for ``world_size`` processes (see ``bn_splits``)."""
        if self.bn_splits:
            return self.bn_splits
        return 2 if world_size == 1 else 1

    def check_world(self, world_size: int) -> None:
        """The global batch must split evenly into processes and batch-norm groups."""
        groups = world_size * self.resolved_bn_splits(world_size)
        if self.batch_size % groups:
            raise InputError(
                f"batch size {self.batch_size} does not split into {world_size} process(es) x "
                f"{self.resolved_bn_splits(world_size)} batch-norm group(s)",
                hint=f"use a multiple of {groups}",
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict) -> PretrainConfig:
        """Inverse of :meth:`to_dict` (JSON lists become tuples again)."""
        values = dict(document)
        crops = {key: tuple(v) if isinstance(v, list) else v for key, v in dict(values.pop("crops")).items()}
        values["auto_augment_crops"] = tuple(values.get("auto_augment_crops", ()))
        return cls(crops=MultiCropConfig(**crops), **values)


DEFAULT_WORKERS = 2
"""Data-loading processes per training process: enough to keep the CPU step fed on 2 cores (tools/bench_pretrain.py)."""


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out; none of these change the weights it produces (except ``amp``).

    Attributes:
        out: the run folder.
        resume: continue the run in ``out`` from its checkpoint (start fresh when there is none).
        overwrite: start over in an ``out`` that holds a run.
        workers: data-loading processes per training process (0: load in the training process).
        device: "auto" (CUDA when present), "cpu", "cuda".
        amp: mixed precision on CUDA (bfloat16 where supported, else float16 with a gradient scaler).
        channels_last: channels-last tensors on CUDA.
        checkpoint_every: also write the checkpoint every N steps (0: at epoch ends only).
        keep_every: keep a copy of the checkpoint every N epochs (0: only the latest).
        max_steps: stop after this global step, with a checkpoint (0: run every epoch).
        eval_davis: a DAVIS root scored (CRW protocol) every ``eval_every`` epochs and at the end.
        eval_year / eval_set: its ImageSets file.
        frame_step: every N-th frame of video files.
        preset: the preset name, for the record.
    """

    out: Path
    resume: bool = False
    overwrite: bool = False
    workers: int = DEFAULT_WORKERS
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    checkpoint_every: int = 0
    keep_every: int = 0
    max_steps: int = 0
    eval_davis: Path | None = None
    eval_every: int = 1
    eval_year: str = "2017"
    eval_set: str = "val"
    frame_step: int = 1
    preset: str | None = None


OURS = PretrainConfig()
"""The paper's recipe (scripts/ours_coco_800ep.sh; 800 epochs of COCO train2017 on 2 V100s)."""

MOCO_V2 = replace(
    OURS,
    crops=MultiCropConfig(large_size=224, small_crops=0, constrained=False),
    auto_augment_crops=(),
    key_momentum=0.999,
    nn_weight=0.0,
)
"""The paper's MoCo v2 baseline (scripts/moco_coco_800ep.sh: two 224 px crops, T 0.2, m 0.999, lr 0.3)."""

OURS_CPU = replace(
    OURS,
    arch="resnet18",
    crops=MultiCropConfig(large_size=64, small_size=32),
    recipe_queue_size=2048,
    key_momentum=0.99,
    epochs=100,
    batch_size=32,
    lr=0.6,
)
"""The recipe's shape at 64 / 32 px crops on ResNet-18 with a 2048-key queue, for CPUs (README figures)."""

MOCO_V2_CPU = replace(
    OURS_CPU,
    crops=MultiCropConfig(large_size=64, small_crops=0, constrained=False),
    auto_augment_crops=(),
    nn_weight=0.0,
)
"""MoCo v2 at the size of ``OURS_CPU`` (two 64 px crops), its baseline at equal settings."""

PRESETS: dict[str, PretrainConfig] = {
    "ours": OURS,
    "moco-v2": MOCO_V2,
    "ours-cpu": OURS_CPU,
    "moco-v2-cpu": MOCO_V2_CPU,
}


def get_preset(name: str) -> PretrainConfig:
    """The preset called ``name``. Raises InputError naming the known presets."""
    if name not in PRESETS:
        raise InputError(f"unknown pretraining preset {name!r}", hint=f"choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
