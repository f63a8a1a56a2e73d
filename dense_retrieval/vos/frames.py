"""The frame loop shared by every video road: frames -> features -> propagated label maps.

Frames stream through the extractor (batched) and the propagator one at a time; only the frames
still in the context stay in memory (:mod:`dense_retrieval.propagation`). :func:`propagate_soft` is
the loop itself: it yields the soft labels on the feature grid, whatever they encode (object masks,
keypoint heatmaps, body parts). :func:`propagate_frames` starts it from an integer label map and
upsamples the predictions to the frame (DAVIS results in :mod:`.davis_run`, any video in
:mod:`.video_run`); the JHMDB and VIP runners read the soft labels out in their own way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from ..backbone.features import FeatureExtractor
from ..errors import DataFormatError, InputError
from ..labels import VOID
from ..propagation.config import PropagationConfig
from ..propagation.labels import grid_to_labels, labels_to_grid
from ..propagation.propagator import LabelPropagator
from ..records import RESULTS_RECORD, RunRecord
from ..runtime import ahead, split_threads

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

    Yields:
        ``(frame, labels)`` per frame: the RGB frame and its ``uint8 [H, W]`` ids (soft labels upsampled
        bilinearly to the frame, argmax). The first frame's labels are ``first_labels`` unchanged (it is
        not predicted).
    """
    num_labels = num_labels or check_first_mask(first_labels, first_labels.shape[:2])
    size = tuple(first_labels.shape[:2])

    def first_grid(grid: tuple[int, int]) -> torch.Tensor:
        return labels_to_grid(first_labels, num_labels, grid, config.label_resize)

    stream = propagate_soft(frames, first_grid, extractor, config, total, desc, ahead_frames)
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
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Propagate soft labels through ``frames``: the one frame loop of every video road.

    Frames are read and embedded in a background thread while the previous ones propagate, at most
    ``ahead_frames`` frames (plus one extractor batch) ahead, so memory stays bounded whatever the
    video's length. On the CPU the two stages share torch's intra-op threads (features half, rounded
    down; propagation the rest: :func:`~dense_retrieval.runtime.split_threads`); the caller's thread
    count is restored when the loop ends. With one thread in all (or ``ahead_frames=0``) the stages
    run one after the other.

    Args:
        frames: ``uint8 [H, W, 3]`` RGB frames, the annotated one first, all one size.
        first_grid: given the feature grid ``(h, w)`` of the first frame, its labels as float
            ``[L, h, w]`` (one-hot object maps, Gaussian keypoint maps, ...).
        extractor: the backbone and feature settings.
        config: the propagation protocol.
        total: number of frames, for the progress bar.
        desc: progress bar label.
        ahead_frames: frames decoded and embedded ahead of the propagation (0: none, no thread).

    Yields:
        ``(frame, soft)`` per frame: the RGB frame and float ``[L, h, w]`` label distributions on the
        feature grid, on the extractor's device (the first frame's are ``first_grid(grid)`` itself).
    """
    propagator = LabelPropagator(config)
    size = None
    # features stay on the extractor's device: on a GPU the propagation runs there too
    stream = extractor.stream(frames, total=total, desc=desc, keep_on_device=True)
    threads = torch.get_num_threads()
    on_cpu = extractor.device.type == "cpu"
    overlap = ahead_frames > 0 and (threads > 1 or not on_cpu)
    feature_threads, propagation_threads = split_threads(threads) if on_cpu else (threads, threads)
    if overlap:
        stream = ahead(stream, ahead_frames, feature_threads)
        torch.set_num_threads(propagation_threads)
    try:
        for index, (frame, maps) in enumerate(stream):
            size = size or tuple(frame.shape[:2])
            if frame.shape[:2] != size:
                raise DataFormatError(
                    f"frame {index} is {frame.shape[0]}x{frame.shape[1]}, the first frame {size[0]}x{size[1]}",
                    hint="all frames of a video must have the same size",
                )
            frame_features = maps.single()
            with torch.inference_mode():
                if index == 0:
                    soft = first_grid(maps.grid).to(frame_features.device)
                    propagator.start(frame_features, soft)
                else:
                    soft = propagator.step(frame_features)
            yield frame, soft
    finally:
        if overlap:
            stream.close()  # stops the reader thread before the caller's thread count comes back
            torch.set_num_threads(threads)


def run_record(extractor: FeatureExtractor, config: PropagationConfig, **settings: object) -> RunRecord:
    """Everything that determines the masks: backbone, weights, feature settings, propagation protocol."""
    return RunRecord.of(extractor.describe(), propagation=config.describe(), **settings)
