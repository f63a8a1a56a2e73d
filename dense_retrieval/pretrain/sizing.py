"""``--queue-size auto`` and ``--nn-topk auto``: the queue and the neighbour count sized to the data (torch-free).

Why. MoCo's queue holds the keys of the last K images seen; they are the negatives of every query. When K
is not smaller than the number of training images, the queue holds earlier keys of the very image a query
comes from, as negatives: InfoNCE climbs towards chance and the backbone ends below its random
initialisation (README, "Pretraining on a CPU"). The presets keep COCO's proportions (``ours``: 65,536
keys for 118,287 images), so a user's own few thousand images need a smaller queue, and the NN loss,
whose ``top-k`` neighbours are positives, needs a count that stays a small share of that queue.

The rules (chosen from the sweep in README "Pretraining on a CPU", ``benchmarks/sweep_pretrain.json``):

- queue: the largest whole number of global batches not above ``QUEUE_FRACTION`` x the image count, at
  least one global batch, at most the recipe's K (``recipe_queue_size``);
- neighbours: the recipe's proportion ``recipe_nn_topk / recipe_queue_size`` of that queue (the paper's
  20 of 65,536), rounded, at least ``NN_TOPK_FLOOR``, at most the queue.

Global batch and processes: every step enqueues the keys of ALL processes (gathered), i.e.
``batch_size`` keys (the global batch) whatever the world size, so the queue is counted in global
batches: each step then overwrites one whole block, as facebookresearch/moco requires, and a queue of
one batch holds exactly the previous step's keys. (A smaller explicit queue still works: the pointer
wraps around.)

An explicit ``--queue-size N`` / ``--nn-topk N`` is used as given; the trainer still warns when the
queue is not smaller than the data.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

from .config import AUTO, PretrainConfig

QUEUE_FRACTION = Fraction(65536, 118287)
"""The queue's largest share of the image count: the paper's own, 65,536 keys for COCO train2017's 118,287
images (0.554), so that ``ours`` on COCO keeps exactly the paper's queue. The sweep (117 images, held-out J&F,
benchmarks/sweep_pretrain_queue.json): 0.27 x and 0.55 x the images learn (0.214, 0.224), 0.82 x learns less
(0.183), 1.09 x fails (0.159; random initialisation 0.152)."""

NN_TOPK_FLOOR = 1
"""The fewest neighbours the NN loss takes as positives. On 117 images (K = 64) the NN loss at this floor lifts
held-out J&F from 0.224 (no NN loss) to 0.251 (benchmarks/sweep_pretrain_auto.json); top-20 of the preset's
2048-key queue gave 0.137."""

MEASURED_FAILURE = (
    "measured on 117 images (README, 'Pretraining a backbone'): K = 128 scored J&F 0.159 and K = 2048 0.137 on "
    "held-out DAVIS sequences, against 0.152 at random initialisation and 0.224 at K = 64"
)
"""What the sweep measured when the queue was not smaller than the data (quoted by the warning)."""


def auto_queue_size(images: int, global_batch: int, recipe_queue_size: int) -> int:
    """The queue for ``images`` training images (module docstring): whole global batches, ``QUEUE_FRACTION``
    of the images at most, one batch at least, the recipe's K at most.

    >>> auto_queue_size(117, 32, 2048), auto_queue_size(1, 32, 2048), auto_queue_size(118_287, 256, 65536)
    (64, 32, 65536)
    """
    batches = math.floor(QUEUE_FRACTION * images / global_batch)  # exact: a Fraction, not a float
    return max(global_batch, min(batches * global_batch, recipe_queue_size))


def auto_nn_topk(queue_size: int, recipe_queue_size: int, recipe_nn_topk: int) -> int:
    """Neighbours for a queue of ``queue_size`` keys: the recipe's proportion of it, at least the floor.

    >>> auto_nn_topk(65536, 65536, 20), auto_nn_topk(64, 65536, 20), auto_nn_topk(1, 65536, 20)
    (20, 1, 1)
    """
    proportional = round(queue_size * recipe_nn_topk / recipe_queue_size)
    return min(queue_size, max(NN_TOPK_FLOOR, proportional))


def size_for_data(config: PretrainConfig, images: int) -> tuple[PretrainConfig, dict]:
    """``config`` with ``auto`` queue size and neighbour count replaced by numbers for ``images`` images.

    Returns:
        (the sized config, a record of how each value was chosen: ``{"queue_size": {"requested",
        "chosen", "rule"}, "nn_topk": {...}, "images", "global_batch"}``), the record written into
        config.json and printed at the start of a run.
    """
    queue_size = config.queue_size
    if queue_size == AUTO:
        queue_size = auto_queue_size(images, config.batch_size, config.recipe_queue_size)
    nn_topk = config.nn_topk
    if nn_topk == AUTO:
        nn_topk = auto_nn_topk(queue_size, config.recipe_queue_size, config.recipe_nn_topk)
    sized = replace(config, queue_size=queue_size, nn_topk=nn_topk)
    record = {
        "images": images,
        "global_batch": config.batch_size,
        "nn_weight": config.nn_weight,
        "queue_size": {"requested": config.queue_size, "chosen": queue_size, "rule": _queue_rule(config, images)},
        "nn_topk": {"requested": config.nn_topk, "chosen": nn_topk, "rule": _topk_rule(config, queue_size)},
    }
    return sized, record


def queue_warning(config: PretrainConfig, images: int, sizing: dict) -> str:
    """The warning for a sized ``config`` whose queue is not smaller than the ``images`` (the measured failure)."""
    head = (
        f"the queue ({config.queue_size} keys) is not smaller than the data ({images} images): it holds earlier "
        "keys of the very image a query comes from, as negatives, and InfoNCE climbs towards chance"
    )
    if sizing["queue_size"]["requested"] == AUTO:
        batches = images / config.batch_size
        return f"{head}; {images} images are only {batches:g} global batch(es): add images or lower --batch-size"
    suggested = auto_queue_size(images, config.batch_size, config.recipe_queue_size)
    return (
        f"{head}; {MEASURED_FAILURE}; leave --queue-size to auto (here {suggested}) or pass one below the image count"
    )


def describe(record: dict) -> str:
    """The line a run prints at its start: each value, and where an ``auto`` one came from."""
    parts = []
    for key, label in (("queue_size", "queue"), ("nn_topk", "NN top-k")):
        entry = record[key]
        if key == "nn_topk" and not record["nn_weight"]:
            parts.append("no NN loss")
            continue
        if entry["requested"] == AUTO:
            parts.append(f"{label} auto -> {entry['chosen']}: {entry['rule']}")
        else:
            parts.append(f"{label} {entry['chosen']} (given)")
    return "; ".join(parts)


def _queue_rule(config: PretrainConfig, images: int) -> str:
    batch, full = config.batch_size, config.recipe_queue_size
    if config.queue_size != AUTO:
        return "given"
    needed = math.ceil(full / QUEUE_FRACTION)
    if images >= needed:
        return f"the recipe's K: {images} images reach the {needed} it needs"
    return (
        f"{float(QUEUE_FRACTION):.3f} x {images} images in whole global batches of {batch}, at least one "
        f"(the recipe's {full} needs {needed} images)"
    )


def _topk_rule(config: PretrainConfig, queue_size: int) -> str:
    if config.nn_topk != AUTO:
        return "given"
    share = queue_size * config.recipe_nn_topk / config.recipe_queue_size
    recipe = f"{config.recipe_nn_topk} x {queue_size} / {config.recipe_queue_size}"
    return f"the recipe's share, {recipe} = {share:.3g}, at least {NN_TOPK_FLOOR}"
