"""The frame loop shared by every video road: frames -> features -> propagated label maps.

Frames stream through the extractor and the propagation one at a time; only the frames still in the
context stay in memory (:mod:`dense_retrieval.propagation`). :func:`propagate_soft` is the loop itself:
it yields the soft labels on the feature grid, whatever they encode (object masks, keypoint heatmaps,
body parts). :func:`propagate_frames` starts it from an integer label map and upsamples the predictions
to the frame (DAVIS results in :mod:`.davis_run`, any video in :mod:`.video_run`); the JHMDB and VIP
runners read the soft labels out in their own way.

The work is split where the protocol allows: which context positions a frame takes its labels from (the
neighbour search, most of the arithmetic) depends on the features alone, so the searches of several
frames run side by side in worker threads while the features of the next frames are computed in another;
only the weighted sum of the neighbours' labels, cheap, goes frame after frame, and the callers upsample
and write a frame while the next ones are searched.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import wait

import numpy as np
import torch

from ..backbone.features import FeatureExtractor
from ..errors import DataFormatError, InputError
from ..labels import VOID
from ..propagation.affinity import Scratch
from ..propagation.config import PropagationConfig
from ..propagation.labels import grid_to_labels, labels_to_grid
from ..propagation.propagator import MemoryFrame, context_of, fed_back, find_neighbours, gather_labels
from ..records import RESULTS_RECORD, RunRecord
from ..runtime import ahead, stage_threads, worker_pool

AHEAD_FRAMES = 2
"""Frames read and embedded ahead of the propagation by default (memory: this many feature maps and frames)."""

RECORD = RESULTS_RECORD
"""The run record a results folder keeps: what made its masks (:class:`~dense_retrieval.records.RunRecord`)."""


def check_first_mask(mask: np.ndarray, frame_size: tuple[int, int], source: str = "first-frame mask") -> int:
    """Validate a first-frame label map against the video and return its number of label channels.

    Args:
        mask: ``uint8 [H, W]`` object ids (0 background, 255 void).
        frame_size: ``(H, W)`` of the video's frames.
        source: how to name the mask in errors.

    Returns:
        ``largest object id + 1`` (background included).

    Raises:
        DataFormatError: the mask's size differs from the frames'.
        InputError: the mask holds no object.
    """
    if mask.shape[:2] != tuple(frame_size):
        raise DataFormatError(
            f"{source} is {mask.shape[0]}x{mask.shape[1]} but the frames are {frame_size[0]}x{frame_size[1]}",
            hint="the mask must be the annotation of the first frame, at the frame's size",
        )
    objects = np.unique(mask[(mask != 0) & (mask != VOID)])
    if objects.size == 0:
        raise InputError(
            f"{source} has no objects (only background/void)",
            hint="label the objects to follow with ids 1, 2, ... (or 255 on 0 for a single object)",
        )
    return int(objects.max()) + 1


def propagate_frames(
    frames: Iterable[np.ndarray],
    first_labels: np.ndarray,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    num_labels: int | None = None,
    total: int | None = None,
    desc: str = "frames",
    ahead_frames: int = AHEAD_FRAMES,
    search_workers: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Propagate the integer label map ``first_labels`` through ``frames`` (:func:`propagate_soft`).

    Args:
        frames: ``uint8 [H, W, 3]`` RGB frames, the annotated one first, all one size.
        first_labels: ``uint8 [H, W]`` ids of the first frame (0 background; 255 void counts as
            background), one-hot encoded and resized to the grid by ``config.label_resize``.
        extractor: the backbone and feature settings (CRW: ResNet-50 layer3, stride 8, L2-normalised).
        config: the propagation protocol.
        num_labels: label channels (default: largest id in ``first_labels`` + 1).
        total: number of frames, for the progress bar.
        desc: progress bar label.
        ahead_frames: frames decoded and embedded ahead of the propagation (0: none, no thread).
        search_workers: neighbour searches run side by side on the CPU (default: one per core; speed only).

    Yields:
        ``(frame, labels)`` per frame: the RGB frame and its ``uint8 [H, W]`` ids (soft labels upsampled
        bilinearly to the frame, argmax). The first frame's labels are ``first_labels`` unchanged (it is
        not predicted).
    """
    num_labels = num_labels or check_first_mask(first_labels, first_labels.shape[:2])
    size = tuple(first_labels.shape[:2])

    def first_grid(grid: tuple[int, int]) -> torch.Tensor:
        return labels_to_grid(first_labels, num_labels, grid, config.label_resize)

    stream = propagate_soft(frames, first_grid, extractor, config, total, desc, ahead_frames, search_workers)
    try:
        for index, (frame, soft) in enumerate(stream):
            if index == 0:
                if frame.shape[:2] != size:
                    raise DataFormatError(
                        f"frame 0 is {frame.shape[0]}x{frame.shape[1]}, its labels {size[0]}x{size[1]}",
                        hint="the first-frame mask must have the frame's size",
                    )
                yield frame, np.ascontiguousarray(first_labels, dtype=np.uint8)
                continue
            with torch.inference_mode():
                labels = grid_to_labels(soft, size, normalize=config.normalize_prediction)
            yield frame, labels.to(torch.uint8).cpu().numpy()
    finally:
        stream.close()  # the reader thread stops and the caller's thread count comes back now, not at collection


def propagate_soft(
    frames: Iterable[np.ndarray],
    first_grid: Callable[[tuple[int, int]], torch.Tensor],
    extractor: FeatureExtractor,
    config: PropagationConfig,
    total: int | None = None,
    desc: str = "frames",
    ahead_frames: int = AHEAD_FRAMES,
    search_workers: int | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Propagate soft labels through ``frames``: the one frame loop of every video road.

    On the CPU with more than one thread, frames are read and embedded in a background thread (at most
    ``ahead_frames`` ahead) while the neighbour searches of the frames before run in one single-threaded
    worker per core (:func:`~dense_retrieval.runtime.stage_threads`); the caller's thread gathers the
    labels in frame order. Memory stays bounded whatever the video's length. With one thread (or
    ``ahead_frames=0``) everything runs in the caller's thread, one stage after the other, with the same
    results. On a GPU the features and searches stay on the device, one search worker. The caller's thread
    count is restored when the loop ends.

    Args:
        frames: ``uint8 [H, W, 3]`` RGB frames, the annotated one first, all one size.
        first_grid: given the feature grid ``(h, w)`` of the first frame, its labels as float
            ``[L, h, w]`` (one-hot object maps, Gaussian keypoint maps, ...).
        extractor: the backbone and feature settings.
        config: the propagation protocol.
        total: number of frames, for the progress bar.
        desc: progress bar label.
        ahead_frames: frames decoded and embedded ahead of the propagation (0: none, no thread).
        search_workers: neighbour searches run side by side on the CPU (default: one per core; speed only).

    Yields:
        ``(frame, soft)`` per frame: the RGB frame and float ``[L, h, w]`` label distributions on the
        feature grid, on the extractor's device (the first frame's are ``first_grid(grid)`` itself).
    """
    threads = torch.get_num_threads()
    on_cpu = extractor.device.type == "cpu"
    parallel = ahead_frames > 0 and (threads > 1 or not on_cpu)
    feature_threads, workers = stage_threads(threads) if on_cpu else (threads, 1)
    workers = search_workers or workers
    extractor.fuse_for_video()  # frames of one size: the fused CNN pays (a no-op on a GPU)
    # features stay on the extractor's device: on a GPU the propagation runs there too
    stream = _memory_frames(extractor.stream(frames, total=total, desc=desc, keep_on_device=True))
    if parallel:
        stream = ahead(stream, ahead_frames, feature_threads)
        torch.set_num_threads(1 if on_cpu else threads)
    pool = worker_pool(workers if parallel else 0, 1 if on_cpu else None)
    searches: deque[tuple[int, np.ndarray, object]] = deque()
    loop = _LabelChain(config)
    size, error = None, None
    try:
        for index, frame, memory in stream:
            size = size or tuple(frame.shape[:2])
            if frame.shape[:2] != size:
                error = DataFormatError(
                    f"frame {index} is {frame.shape[0]}x{frame.shape[1]}, the first frame {size[0]}x{size[1]}",
                    hint="all frames of a video must have the same size",
                )
                break
            if index == 0:
                with torch.inference_mode():
                    soft = first_grid(memory.grid).to(memory.keys.device)
                loop.start(memory, soft)
                yield frame, soft
                continue
            slots = loop.context(memory)
            searches.append((index, frame, pool.submit(_search, memory, slots, config)))
            while searches and (len(searches) > workers or searches[0][2].done()):
                yield loop.finish(*searches.popleft())
        while searches:  # frames before a bad one are still delivered
            yield loop.finish(*searches.popleft())
        if error is not None:
            raise error
    finally:  # an early stop: drop the searches not started, wait for the running ones
        for _, _, future in searches:
            future.cancel()
        wait([future for _, _, future in searches])
        if parallel:
            stream.close()  # stops the reader thread before the caller's thread count comes back
            torch.set_num_threads(threads)


class _LabelChain:
    """What goes frame after frame: the context frames kept, the labels they pass on, the weighted sum."""

    def __init__(self, config: PropagationConfig):
        self.config = config
        self.keys: dict[int, MemoryFrame] = {}  # frames a search still to submit may need
        self.labels: dict[int, torch.Tensor] = {}  # [h * w, L] labels passed on, by frame number
        self.grid = (0, 0)

    def start(self, memory: MemoryFrame, soft: torch.Tensor) -> None:
        """Frame 0 and its labels ``soft`` ``[L, h, w]``."""
        if tuple(soft.shape[1:]) != memory.grid:
            raise InputError(
                f"first-frame labels {tuple(soft.shape)} are not on the feature grid {memory.grid}",
                hint="first_grid must return [L, h, w] labels for the grid it is given",
            )
        self.grid = memory.grid
        self.keys = {0: memory}
        self.labels = {0: _rows(soft)}

    def context(self, memory: MemoryFrame) -> list[tuple[MemoryFrame, bool]]:
        """The slots of ``memory``'s frame; forgets the keys no later frame needs."""
        self.keys[memory.index] = memory
        slots = [(self.keys[index], restricted) for index, restricted in context_of(memory.index, self.config)]
        oldest = memory.index + 1 - self.config.context
        for index in [index for index in self.keys if 0 < index < oldest]:
            del self.keys[index]
        return slots

    def finish(self, index: int, frame: np.ndarray, search) -> tuple[np.ndarray, torch.Tensor]:
        """The soft labels ``[L, h, w]`` of frame ``index`` from its neighbours (kept for the frames after)."""
        with torch.inference_mode():
            soft = gather_labels(search.result(), self.labels, self.grid)
            if self.config.context > 0:
                self.labels[index] = _rows(fed_back(soft, self.config))
        oldest = index + 1 - self.config.context
        for stale in [stale for stale in self.labels if 0 < stale < oldest]:
            del self.labels[stale]
        return frame, soft


_SCRATCH = threading.local()


def _search(memory: MemoryFrame, slots: list[tuple[MemoryFrame, bool]], config: PropagationConfig):
    """The neighbours of one frame (in a worker thread: its own work buffers, inference mode)."""
    if not hasattr(_SCRATCH, "buffers"):
        _SCRATCH.buffers = Scratch()
    with torch.inference_mode():
        return find_neighbours(memory.query, slots, config, _SCRATCH.buffers)


def _memory_frames(stream: Iterator) -> Iterator[tuple[int, np.ndarray, MemoryFrame]]:
    """``(index, frame, MemoryFrame)``: each frame's keys as rows, and their bfloat16 copy where the search
    uses one, made here (in the reader thread) rather than by the searches."""
    for index, (frame, maps) in enumerate(stream):
        memory = MemoryFrame.from_maps(index, maps.single())
        memory.prepare()
        yield index, frame, memory


def _rows(labels: torch.Tensor) -> torch.Tensor:
    """``[L, h, w]`` -> ``[h * w, L]``, contiguous."""
    return labels.permute(1, 2, 0).reshape(-1, labels.shape[0]).contiguous()


def run_record(extractor: FeatureExtractor, config: PropagationConfig, **settings: object) -> RunRecord:
    """Everything that determines the masks: backbone, weights, feature settings, propagation protocol."""
    return RunRecord.of(extractor.describe(), propagation=config.describe(), **settings)
