"""Building a patch memory in stages that one process or a torchrun job of many runs alike.

The same staged build as a segment index (``index build``, docs/scaling.md), with patches for segments:

    extract   every rank turns its shards of the memory images into patches: each image pass (an augmented
              crop, or the validation resize) gives its features and label map; the patches the bounded
              memory keeps (:func:`~.patches.bounded_sample`) are written with their soft labels
    train     rank 0: the factory (``--factory``, or chosen for ``--max-memory``: exact Flat while it fits),
              trained once on a sample of all shards (:mod:`..index.stages`)
    encode    every rank: its shards with the trained codec
    join      rank 0: the FAISS index (in memory or on disk), the label store and the origins concatenated
              in shard order, recall@k of held-out patches against exact search, then the folder swapped
              in at OUT (:mod:`.memory`)

Intermediate results live in ``.OUT.build/`` next to OUT (:mod:`..index.shards`); a rerun of the same
build (same images, features and memory settings) keeps every finished shard, the trained codec and the
encodings, so a ``kill -9`` costs the shard in flight. Every random draw derives from (seed, pass, image),
so the memory does not depend on the number of shards or ranks.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ...data.atomic import atomic_directory, write_json
from ...distributed import Ranks
from ...errors import DataFormatError, InputError, OutputExistsError
from ...labels import VOID
from ..index.codec import join
from ..index.shards import Shard, Staging, VectorShardWriter, offsets
from ..index.stages import IndexOptions, check_factory, held_out_recall, train_and_encode
from ..index.storage import TRAINED_NAME
from .memory import FAISS_FILE, IMAGES, LABELS, MEMORY_FORMAT, ORIGINS, RECORD, PatchMemory, is_memory
from .patches import bounded_sample, patch_classes, soft_labels
from .transforms import derived_seed

MAX_SHARD_IMAGES = 500
SHARD_LABELS, SHARD_ORIGINS = "labels.bin", "origins.i32"
_NOISE = 1  # the purpose of a derived seed: the sampling noise (0 is the transform's)


@dataclass(frozen=True)
class PatchBatch:
    """One pass over one memory image, as the network saw it.

    Attributes:
        image: index of the image in the memory's image list.
        epoch: the pass (0 .. passes - 1).
        features: float [D, h, w] of the input.
        labels: int [H, W] class ids of the input (255 void), H = h x patch.
        crop: (top, left, height, width) of the original image the input shows.
    """

    image: int
    epoch: int
    features: torch.Tensor
    labels: torch.Tensor
    crop: tuple[int, int, int, int]


class PatchSource(Protocol):
    """What a memory is built from: named images, each giving one :class:`PatchBatch` per pass."""

    names: Sequence[str]

    def batches(self, images: Sequence[int]) -> Iterator[PatchBatch]:
        """Every pass over each of ``images`` (indices into :attr:`names`), image by image."""
        ...


@dataclass(frozen=True)
class MemoryPlan:
    """What a memory holds, besides its FAISS options.

    Attributes:
        num_classes: C, the soft label's length; labels are ``0 .. C - 1`` (255 is class 0, as in the
            reproduction's memory).
        per_image: patches kept per image pass (None: all of them).
        seed: the sampling noise of image i in pass e derives from (seed, e, i).
        label_dtype: ``"float16"`` or ``"uint8"``.
        record: what made it (backbone, features, settings, dataset): compared before a memory is reused.
        input_size: the network input side S of every pass. grid: (h, w) of its feature map.
        recall_k: neighbours recall is measured at (the protocol's k).
    """

    num_classes: int
    per_image: int | None
    seed: int
    label_dtype: str
    record: dict
    input_size: int
    grid: tuple[int, int]
    recall_k: int = 30


class PatchShardWriter(VectorShardWriter):
    """A shard of a patch memory: normalised vectors, soft labels [n, C] and origins [n, 3]."""

    def __init__(self, staging: Path, number: int, dim: int, classes: int, label_dtype: str):
        super().__init__(staging, number, dim)
        self.classes, self.label_dtype = classes, label_dtype
        self._labels = open(self.path / SHARD_LABELS, "wb")  # noqa: SIM115 - closed by finish()
        self._origins = open(self.path / SHARD_ORIGINS, "wb")  # noqa: SIM115

    def add(self, vectors: np.ndarray, labels: np.ndarray, origins: np.ndarray) -> None:
        """Append float32 [k, dim] vectors, float [k, C] soft labels and int [k, 3] origins."""
        if not len(vectors) == len(labels) == len(origins) or labels.shape[1:] != (self.classes,):
            raise ValueError(f"{vectors.shape} vectors, {labels.shape} labels, {origins.shape} origins")
        self._labels.write(encode_labels(labels, self.label_dtype).tobytes())
        self._origins.write(np.ascontiguousarray(origins, dtype=np.int32).tobytes())
        self.add_vectors(vectors)

    def _close_payload(self) -> None:
        for handle in (self._labels, self._origins):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()

    def _drop_payload(self) -> None:
        self._labels.close()
        self._origins.close()


def encode_labels(labels: np.ndarray, dtype: str) -> np.ndarray:
    """Soft labels float [k, C] as stored: float16, or uint8 steps of 1/255."""
    labels = np.asarray(labels, dtype=np.float32)
    if dtype == "uint8":
        return np.clip(np.rint(labels * 255.0), 0, 255).astype(np.uint8)
    return labels.astype(np.float16)


def patches_of(batch: PatchBatch, plan: MemoryPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The patches of one image pass the memory keeps: vectors [k, D] (L2-normalised), soft labels [k, C],
    cells int64 [k] (raster order), chosen by :func:`~.patches.bounded_sample` when the memory is bounded."""
    dim, height, width = batch.features.shape
    labels = batch.labels.long().clone()
    labels[labels == VOID] = 0  # the reproduction's memory counts void pixels as class 0
    if labels.numel() and (labels.min() < 0 or labels.max() >= plan.num_classes):
        raise DataFormatError(
            f"memory image {batch.image} has label {int(labels.max())}, outside 0..{plan.num_classes - 1} and not 255",
            hint="check the class count of the dataset",
        )
    patch = labels.shape[0] // height
    if labels.shape != (height * patch, width * patch):
        raise ValueError(f"labels {tuple(labels.shape)} do not tile a {height}x{width} grid")
    classes = patch_classes(labels, patch)
    if plan.per_image is None or plan.per_image >= height * width:
        cells = torch.arange(height * width)
    else:
        generator = torch.Generator().manual_seed(derived_seed(plan.seed, batch.epoch, batch.image, _NOISE))
        cells = bounded_sample(classes, plan.num_classes, plan.per_image, generator)
    vectors = F.normalize(batch.features.reshape(dim, -1).T[cells].float(), dim=1)
    return vectors.numpy(), soft_labels(classes[cells], plan.num_classes).numpy(), cells.numpy()


def build_memory(
    source: PatchSource,
    out: str | os.PathLike,
    plan: MemoryPlan,
    options: IndexOptions | None = None,
    overwrite: bool = False,
    shard_images: int | None = None,
    ranks: Ranks | None = None,
    log: Callable[[str], None] | None = None,
) -> dict | None:
    """Build the memory of ``source`` at ``out`` (module doc); returns its report on rank 0, else None.

    Args:
        options: factory or memory budget, on-disk lists, held-out recall queries (``codec_from`` unused).
        overwrite: replace a patch memory at ``out`` (never anything else).
        shard_images: images per shard (default: the images split over the ranks, at most 500).
    """
    ranks = ranks or Ranks()
    options = options or IndexOptions()
    log = log if (log is not None and ranks.is_main) else (lambda message: None)
    out = Path(out).resolve()
    count_images = len(source.names)
    if count_images == 0:
        raise InputError("no memory images", hint="check the training split")
    if shard_images is not None and shard_images < 1:
        raise InputError(f"images per shard must be at least 1, got {shard_images}")
    if options.codec_from is not None:
        raise InputError("a patch memory trains its own codec", hint="leave out --codec-from")
    check_replaceable(out, overwrite)
    size = shard_images or max(1, min(MAX_SHARD_IMAGES, math.ceil(count_images / ranks.world)))
    count = math.ceil(count_images / size)
    staging = Staging(out, {"memory": plan.record, "images": count_images, "shard_images": size})
    with staging.held(ranks, log, f"{count} shards of {size} images"):
        started = time.perf_counter()

        def extract(number: int) -> None:
            extract_shard(staging, number, range(number * size, min((number + 1) * size, count_images)), source, plan)

        shards = staging.extract_missing(count, ranks, extract)
        extract_seconds = time.perf_counter() - started
        if int(offsets(shards)[-1]) == 0:
            raise InputError("the memory images gave no patches", hint="check the images and the labels")
        check_factory(options, shards[0].dim)
        started = time.perf_counter()
        record = train_and_encode(staging, shards, options, ranks, log)
        train_encode_seconds = time.perf_counter() - started
        if not ranks.is_main:
            return None
        log(f"joining {count} shards ({int(offsets(shards)[-1])} patches) into {out}")
        report = join_memory(out, staging, shards, record, plan, options.on_disk, source.names, ranks)
        extracted = staging.extracted_now(ranks.world)
        report["shards"] = {"count": count, "images_per_shard": size, "extracted_now": extracted}
        stages = {"extract": extract_seconds, "train_and_encode": train_encode_seconds}
        report["seconds"] = {**{key: round(value, 2) for key, value in stages.items()}, **report["seconds"]}
        staging.remove()
        return report


def check_replaceable(out: Path, overwrite: bool) -> None:
    """A memory may be written at ``out``: nothing there, an empty folder, or (``overwrite``) a memory."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputExistsError(f"{out} is a file, not a memory folder", hint="choose another memory folder")
    if not any(out.iterdir()):
        return
    if not is_memory(out):
        raise OutputExistsError(
            f"{out} holds files that are not a patch memory; --overwrite replaces only a memory",
            hint="choose a new or empty folder",
        )
    if not overwrite:
        raise OutputExistsError(f"a patch memory exists at {out}", hint="pass --overwrite to replace it")


def extract_shard(staging: Staging, number: int, images: range, source: PatchSource, plan: MemoryPlan) -> Shard:
    """Write the kept patches of ``images`` (every pass) as shard ``number``."""
    writer = None
    crops: dict[str, dict[str, list[int]]] = {}
    try:
        for batch in source.batches(images):
            vectors, labels, cells = patches_of(batch, plan)
            if writer is None:
                writer = PatchShardWriter(staging.path, number, vectors.shape[1], plan.num_classes, plan.label_dtype)
            origins = np.stack([np.full_like(cells, batch.image), np.full_like(cells, batch.epoch), cells], axis=1)
            writer.add(vectors, labels, origins)
            crops.setdefault(str(batch.image), {})[str(batch.epoch)] = [int(v) for v in batch.crop]
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise InputError(f"memory images {images.start}..{images.stop - 1} gave no patches")
    return writer.finish({"images": [images.start, images.stop], "crops": crops, "classes": plan.num_classes})


def join_memory(
    out: Path,
    staging: Staging,
    shards: Sequence[Shard],
    record: dict,
    plan: MemoryPlan,
    on_disk: bool,
    names: Sequence[str],
    ranks: Ranks,
) -> dict:
    """Rank 0: the finished memory folder at ``out`` (swapped in whole), and its report."""
    trained_plan = record["plan"]
    total, dim = int(offsets(shards)[-1]), shards[0].dim
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with atomic_directory(out, final=True) as tmp:
        (tmp / FAISS_FILE).parent.mkdir()
        ntotal = join(shards, staging.path / TRAINED_NAME, tmp / FAISS_FILE, on_disk)
        seconds["faiss_join"] = time.perf_counter() - started
        _concatenate(tmp / LABELS, shards, SHARD_LABELS, plan.label_dtype, plan.num_classes)
        _concatenate(tmp / ORIGINS, shards, SHARD_ORIGINS, "int32", 3)
        crops: dict[str, dict[str, list[int]]] = {}
        for shard in shards:
            crops.update(shard.info["crops"])
        write_json(tmp / IMAGES, {"images": list(names), "crops": crops})
        seconds["labels"] = time.perf_counter() - started - sum(seconds.values())
        document = {
            "format": MEMORY_FORMAT,
            "record": plan.record,
            "factory": trained_plan["factory"],
            "ntotal": ntotal,
            "dim": dim,
            "classes": plan.num_classes,
            "label_dtype": plan.label_dtype,
            "on_disk": on_disk,
            "input_size": plan.input_size,
            "grid": list(plan.grid),
            "per_image": plan.per_image,
            "search_params": trained_plan["search_params"],
            "choice": trained_plan["choice"],
            "recall": None,
            "build": {"shards": len(shards), "ranks": ranks.world, "train_size": record.get("train_size", 0)},
        }
        write_json(tmp / RECORD, document)
        with PatchMemory.open(tmp) as memory:
            recall = held_out_recall(
                staging, shards, record, lambda q, k: memory.search(q, k)[1], k=min(plan.recall_k, total - 2)
            )
            index_bytes, label_bytes = memory.index_bytes(), memory.label_bytes()
        seconds["recall"] = time.perf_counter() - started - sum(seconds.values())
        choice = trained_plan["choice"]
        if choice:
            choice = {**choice, "index_bytes": index_bytes, "within_budget": index_bytes <= choice["budget_bytes"]}
        write_json(tmp / RECORD, {**document, "recall": recall, "choice": choice})
    return {
        "memory": str(out),
        "patches": total,
        "dim": dim,
        "factory": trained_plan["factory"],
        "on_disk": on_disk,
        "search_params": trained_plan["search_params"],
        "index_bytes": index_bytes,
        "label_bytes": label_bytes,
        "choice": choice,
        "recall": recall,
        "train_seconds": record.get("train_seconds"),
        "seconds": {stage: round(value, 2) for stage, value in seconds.items()},
    }


def _concatenate(target: Path, shards: Sequence[Shard], name: str, dtype: str, width: int) -> None:
    """The shards' ``name`` files ([n_s, width] of ``dtype`` each) as one ``.npy`` [N, width], in shard order."""
    total = sum(shard.segments for shard in shards)
    array = np.lib.format.open_memmap(target, mode="w+", dtype=np.dtype(dtype), shape=(total, width))
    start = 0
    for shard in shards:
        part = np.fromfile(shard.path / name, dtype=dtype)
        if part.size != shard.segments * width:
            raise DataFormatError(f"shard {shard.path} is damaged: {name} has {part.size} of {shard.segments * width}")
        array[start : start + shard.segments] = part.reshape(-1, width)
        start += shard.segments
    array.flush()
    del array
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())
