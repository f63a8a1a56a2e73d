"""Pretraining (the paper's road to a backbone): MoCo v2 with constrained multi-crop, AutoAugment and the
nearest-neighbour loss, on one process or many under torchrun.

    source.py       what to learn from: image folders, videos, frame folders, DAVIS roots
    crops.py        constrained multi-crop boxes          augment.py   torchvision augmentations per crop
    dataset.py      samples reproducible from (seed, epoch, index); the resumable sampler
    encoder.py      torchvision trunk + MLP head ``fc``    moco.py      encoders, momentum, the two queues
    losses.py       InfoNCE and the nearest-neighbour loss (pure torch)
    shuffle_bn.py   shuffle-BN across processes (the process group: dense_retrieval/distributed.py)
    checkpoint.py   the paper's checkpoint layout, atomic; run_folder.py  config, JSON-lines log, summary
    trainer.py      the loop, exact resume              evaluation.py  --eval-davis (CRW protocol J&F)

Importing this package does not import torch (the configuration and presets are plain dataclasses).
"""

from .config import MOCO_V2, MOCO_V2_CPU, OURS, OURS_CPU, PRESETS, MultiCropConfig, PretrainConfig, get_preset

__all__ = [
    "MOCO_V2",
    "MOCO_V2_CPU",
    "OURS",
    "OURS_CPU",
    "PRESETS",
    "MultiCropConfig",
    "PretrainConfig",
    "get_preset",
]
