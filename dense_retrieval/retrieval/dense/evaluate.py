"""The Hummingbird protocol end to end: a patch memory of one split, every patch of another read from it, mIoU.

Balazevic et al., "Towards In-context Scene Understanding", NeurIPS 2023, as open-hummingbird-eval
reproduces it (REFERENCES.md, "Dense nearest-neighbour retrieval"):

1. memory: each memory image, in each of ``augmentation_epochs`` augmented passes, gives its patch
   features (L2-normalised) and soft labels; a bounded memory keeps ``memory_size // (images x passes)``
   patches per pass, rarest classes first (:mod:`.memory_build`, staged and resumable, any size);
2. queries: each validation image, resized to the input size, gives its patch features; each patch reads
   its ``neighbours`` nearest memory patches, softmax(cosine / temperature)-weighted (:mod:`.readout`);
3. the patch grid of label vectors is upsampled bilinearly to the input size, argmax, and scored against
   the labels resized (nearest) to that size: TP/FP/FN summed over the set, the ignore index left out,
   with Hungarian matching (the reproduction's) and without; the mean runs over all C classes, a class
   absent from both counting 0 (the reproduction's), and, for reading, over the classes present.

A memory is kept in a folder and reused when its record (backbone, features, memory settings, dataset,
index options) is the one asked for; a memory given as an input (``reuse``) is read with other queries,
k or temperature without re-extracting.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ...backbone.features import FeatureExtractor
from ...data.atomic import atomic_directory
from ...data.masks import write_label_png
from ...data.segmentation_sets import LabelledImages
from ...distributed import Ranks
from ...errors import ConfigMismatchError, InputError
from ...labels import VOID
from ...metrics.segmentation import ConfusionMeter, hungarian_mapping, iou_from_confusion, remap_confusion
from ...records import RunRecord, differences, identity
from ..index.stages import IndexOptions
from .config import DenseProtocol
from .memory import PatchMemory, is_memory, read_memory_record
from .memory_build import MemoryPlan, build_memory
from .readout import predict
from .sources import ImagePatches, validation_features

REFERENCE = "Hummingbird dense nearest-neighbour retrieval (Balazevic et al., 2023; open-hummingbird-eval)"


def memory_record(
    extractor: FeatureExtractor, protocol: DenseProtocol, train: LabelledImages, options: IndexOptions
) -> dict:
    """What a memory of ``train`` is made of: compared before a kept memory is reused."""
    files = hashlib.sha256()
    for image, label in zip(train.images, train.labels, strict=True):
        files.update(f"{Path(image).resolve()}\n{Path(label).resolve()}\n".encode())
    dataset = {**train.describe(), "files_sha256": files.hexdigest()}
    dataset.pop("root")
    index = {"factory": options.factory, "max_memory": options.max_memory, "on_disk": options.on_disk}
    size = protocol.input_for(extractor.stride)
    return RunRecord.of(
        extractor.describe(), dense=protocol.memory_settings(), input_size=size, dataset=dataset, index=index
    ).as_dict()


def evaluate_dense(
    train: LabelledImages,
    val: LabelledImages,
    extractor: FeatureExtractor,
    protocol: DenseProtocol,
    memory: str | os.PathLike,
    options: IndexOptions | None = None,
    reuse: bool = False,
    overwrite: bool = False,
    predictions: str | os.PathLike | None = None,
    shard_images: int | None = None,
    ranks: Ranks | None = None,
    log: Callable[[str], None] | None = None,
) -> dict | None:
    """Run the protocol (module doc); returns the JSON-ready report on rank 0, None on other ranks.

    Args:
        train: the memory split. val: the split scored.
        memory: the memory folder: built there (or reused when its record matches), or, with ``reuse``,
            an existing memory read as an input.
        options: factory or ``max_memory`` budget, on-disk lists, held-out recall queries.
        overwrite: replace a memory at ``memory`` that was made with other settings.
        predictions: a folder to write the predicted label PNGs to (complete, or not at all).
    """
    ranks, options = ranks or Ranks(), options or IndexOptions()
    log = log if (log is not None and ranks.is_main) else (lambda message: None)
    started, cpu_started, load = time.perf_counter(), time.process_time(), os.getloadavg()
    size = protocol.input_for(extractor.stride)
    grid = extractor.grid_size(size, size)
    if extractor.input_size(size, size) != (size, size) or grid != (size // extractor.stride,) * 2:
        raise InputError(f"the feature extractor resizes {size}x{size} inputs", hint="use resize 'native'")
    if train.num_classes != val.num_classes:
        raise InputError(f"memory split has {train.num_classes} classes, the evaluated one {val.num_classes}")
    memory = Path(memory)
    record = memory_record(extractor, protocol, train, options)
    build_report, reused = None, True
    if reuse:
        _check_reusable(read_memory_record(memory), record, val.num_classes, memory)
    elif not _matches(memory, record, overwrite):
        reused = False
        per_image = protocol.per_image(len(train), grid[0] * grid[1])
        plan = MemoryPlan(
            val.num_classes,
            None if protocol.memory_size is None else per_image,
            protocol.seed,
            protocol.label_dtype,
            record,
            size,
            grid,
            recall_k=protocol.neighbours,
        )
        source = ImagePatches(train, extractor, protocol, size)
        build_report = build_memory(source, memory, plan, options, overwrite, shard_images, ranks, log)
    if not ranks.is_main:
        return None
    memory_seconds, memory_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    log(f"reading {len(val)} validation images from the memory at {memory}")
    with PatchMemory.open(memory) as opened:
        scores, queries = _score(opened, val, extractor, protocol, size, predictions)
        summary = _memory_summary(opened, build_report, reused)
    return {
        "protocol": {
            "reference": REFERENCE,
            **protocol.memory_settings(),
            **protocol.query_settings(),
            "input_size": size,
            "grid": list(grid),
        },
        "dataset": {"train": train.describe(), "val": val.describe(), "class_names": list(val.class_names)},
        "features": extractor.describe(),
        "memory": summary,
        "queries": queries,
        "matching": protocol.matching,
        **scores,
        "seconds": {
            "memory": round(memory_seconds, 2),
            **{key: round(value, 2) for key, value in queries.pop("seconds").items()},
            "total": round(time.perf_counter() - started, 2),
        },
        "cpu_seconds": {"memory": round(memory_cpu, 2), "total": round(time.process_time() - cpu_started, 2)},
        "load_average": {"before": [round(v, 2) for v in load], "after": [round(v, 2) for v in os.getloadavg()]},
        "torch_threads": torch.get_num_threads(),
    }


def _matches(memory: Path, record: dict, overwrite: bool) -> bool:
    """Whether the memory at ``memory`` is the one asked for (reuse it); refuse another unless ``overwrite``."""
    if not is_memory(memory):
        return False
    stored = read_memory_record(memory)["record"]
    if identity(stored) == identity(record):
        return True
    if not overwrite:
        keys = differences(stored, record)
        raise ConfigMismatchError(
            f"the patch memory at {memory} was built with other settings ({', '.join(keys[:6])})",
            hint="pass --overwrite to rebuild it, or choose another memory folder",
        )
    return False


def _check_reusable(stored: dict, record: dict, classes: int, memory: Path) -> None:
    """A memory read as an input must hold features made like these queries' and the classes scored."""
    keys = [k for k in differences(stored["record"], record) if k.split(".")[0] in ("backbone", "features")]
    keys += ["input_size"] if stored["record"].get("input_size") != record["input_size"] else []
    if keys:
        raise ConfigMismatchError(
            f"the patch memory {memory} holds features made otherwise ({', '.join(keys[:6])})",
            hint="use the backbone, weights, layer and input size it was built with",
        )
    if stored["classes"] != classes:
        raise ConfigMismatchError(f"the patch memory {memory} has {stored['classes']} classes, the set {classes}")


def _score(
    memory: PatchMemory,
    val: LabelledImages,
    extractor: FeatureExtractor,
    protocol: DenseProtocol,
    size: int,
    predictions: str | os.PathLike | None,
) -> tuple[dict, dict]:
    """Predict every validation image, accumulate the confusion matrix; (scores, query summary)."""
    meter = ConfusionMeter(val.num_classes, ignore_index=val.ignore_index)
    seconds: dict[str, float] = {}
    labels_of: dict[int, np.ndarray] = {}
    started = time.perf_counter()

    def items():
        for index, labels, features in validation_features(val, extractor, size):
            labels_of[index] = labels
            yield index, features, (size, size)

    with atomic_directory(predictions) if predictions is not None else contextlib.nullcontext() as folder:
        stream = predict(memory, items(), protocol.neighbours, protocol.temperature, protocol.query_batch, seconds)
        for index, predicted in stream:
            labels = _checked_labels(labels_of.pop(index), val, index)
            predicted = predicted.numpy().astype(np.uint8)
            meter.update(predicted, labels)
            if folder is not None:
                write_label_png(folder / f"{val.ids[index]}.png", predicted)
    total = time.perf_counter() - started
    seconds = {"query_features": total - sum(seconds.values()), **seconds}
    grid = size // extractor.stride
    queries = {
        "images": len(val),
        "patches": len(val) * grid * grid,
        "search_params": memory.record.get("search_params"),
        "predictions": str(predictions) if predictions is not None else None,
        "seconds": seconds,
    }
    return segmentation_scores(meter.confusion, val.class_names, val.ignore_index, protocol.matching), queries


def segmentation_scores(confusion: np.ndarray, names: tuple[str, ...], ignore_index: int, matching: str) -> dict:
    """mIoU with and without Hungarian matching, per-class IoU of the chosen one (module doc, step 3)."""
    matched = remap_confusion(confusion, hungarian_mapping(confusion))
    chosen = matched if matching == "hungarian" else confusion
    iou = iou_from_confusion(chosen)
    tp = np.diag(chosen)
    fp, fn = chosen.sum(0) - tp, chosen.sum(1) - tp
    present = (tp + fp + fn) > 0
    evaluated = [c for c in range(len(iou)) if c != ignore_index]
    return {
        "miou": float(iou.mean()),
        "miou_hungarian": float(iou_from_confusion(matched).mean()),
        "miou_no_matching": float(iou_from_confusion(confusion).mean()),
        "miou_present": float(iou[present].mean()) if present.any() else float("nan"),
        "miou_evaluated_classes": float(iou[evaluated].mean()),
        "per_class": {
            names[c]: {"iou": float(iou[c]), "tp": int(tp[c]), "fp": int(fp[c]), "fn": int(fn[c]), "present": bool(p)}
            for c, p in enumerate(present)
        },
    }


def _checked_labels(labels: np.ndarray, val: LabelledImages, index: int) -> np.ndarray:
    """Ground truth as scored: void (255) is ignored whatever the set's ignore index; any other value outside
    the classes is an error naming the file."""
    labels = np.where(labels == VOID, val.ignore_index, labels) if val.ignore_index != VOID else labels
    valid = labels[labels != val.ignore_index]
    if valid.size and int(valid.max()) >= val.num_classes:
        raise InputError(
            f"label PNG {val.labels[index]} holds class {int(valid.max())}, outside 0..{val.num_classes - 1}",
            hint="check the class count of the dataset",
        )
    return labels


def _memory_summary(memory: PatchMemory, build: dict | None, reused: bool) -> dict:
    record = memory.record
    summary = {
        "path": str(memory.path),
        "reused": reused,
        "patches": memory.ntotal,
        "dim": memory.dim,
        "per_image": record.get("per_image"),
        "factory": memory.factory,
        "on_disk": record["on_disk"],
        "search_params": record.get("search_params"),
        "index_bytes": memory.index_bytes(),
        "label_bytes": memory.label_bytes(),
        "label_dtype": record["label_dtype"],
        "choice": record.get("choice"),
        "recall": record.get("recall"),
    }
    if build is not None:
        summary["build"] = {key: build[key] for key in ("shards", "seconds", "train_seconds") if key in build}
    return summary
