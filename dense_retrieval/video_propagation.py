"""Propagating a first-frame mask through frames with a feature extractor (the I/O side of propagation).

Frames stream through the extractor (batched) and the propagator one at a time; only the frames
still in the context stay in memory (:mod:`dense_retrieval.propagation`). Predictions are upsampled
to the frame size and written as label maps by the callers (DAVIS results, ``video propagate``).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .data.atomic import atomic_directory, write_json
from .data.images import write_image
from .data.masks import write_label_png
from .data.video import VideoFrames, write_video
from .errors import DataFormatError, InputError
from .features import FeatureExtractor
from .propagation import LabelPropagator, PropagationConfig, grid_to_labels, labels_to_grid
from .propagation.labels import VOID_LABEL
from .viz.strip import label_strip, overlay_frame, thumbnail

RECORD = "propagation.json"

# what changes the masks; batch size, device and the speed-only propagation knobs do not
_SPEED_ONLY = ("tile", "query_chunk")
_RUNTIME_ONLY = ("batch_size", "device", "amp")


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
    objects = np.unique(mask[(mask != 0) & (mask != VOID_LABEL)])
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
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Propagate ``first_labels`` through ``frames``.

    Args:
        frames: ``uint8 [H, W, 3]`` RGB frames, the annotated one first, all one size.
        first_labels: ``uint8 [H, W]`` ids of the first frame (0 background; 255 void counts as
            background).
        extractor: the backbone and feature settings (CRW: ResNet-50 layer3, stride 8, L2-normalised).
        config: the propagation protocol.
        num_labels: label channels (default: largest id in ``first_labels`` + 1).
        total: number of frames, for the progress bar.
        desc: progress bar label.

    Yields:
        ``(frame, labels)`` per frame: the RGB frame and its ``uint8 [H, W]`` ids. The first frame's
        labels are ``first_labels`` unchanged (it is not predicted).
    """
    num_labels = num_labels or check_first_mask(first_labels, first_labels.shape[:2])
    pending: deque[np.ndarray] = deque()  # frames read by the extractor, waiting for their labels

    def remember(stream: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in stream:
            pending.append(frame)
            yield frame

    propagator = LabelPropagator(config)
    size = tuple(first_labels.shape[:2])
    # features stay on the extractor's device: on a GPU the propagation runs there too
    features = extractor.iter_features(remember(frames), total=total, desc=desc, keep_on_device=True)
    for index, frame_features in enumerate(features):
        frame = pending.popleft()
        if frame.shape[:2] != size:
            raise DataFormatError(
                f"frame {index} is {frame.shape[0]}x{frame.shape[1]}, the first frame {size[0]}x{size[1]}",
                hint="all frames of a video must have the same size",
            )
        if index == 0:
            grid = labels_to_grid(first_labels, num_labels, tuple(frame_features.shape[1:]), config.label_resize)
            with torch.inference_mode():
                propagator.start(frame_features, grid.to(frame_features.device))
            yield frame, np.ascontiguousarray(first_labels, dtype=np.uint8)
            continue
        with torch.inference_mode():
            soft = propagator.step(frame_features)
            labels = grid_to_labels(soft, size, normalize=config.normalize_prediction)
        yield frame, labels.to(torch.uint8).cpu().numpy()


def describe_run(extractor: FeatureExtractor, config: PropagationConfig) -> dict:
    """Everything that determines the masks: propagation protocol, backbone, weights, feature settings."""
    described = extractor.describe()
    return {
        "propagation": {k: v for k, v in config.describe().items() if k not in _SPEED_ONLY},
        "backbone": described["backbone"],
        "features": {k: v for k, v in described["features"].items() if k not in _RUNTIME_ONLY},
    }


def write_propagation(
    video: VideoFrames,
    first_labels: np.ndarray,
    num_labels: int,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    out: str | os.PathLike,
    overlay: str | os.PathLike | None = None,
    every: int | None = None,
    strip_frames: int = 8,
) -> dict:
    """Propagate through ``video`` and write ``out/<frame>.png`` (+ ``out/propagation.json``).

    Args:
        video: the opened video or frame folder.
        first_labels: ``uint8 [H, W]`` ids of its first frame (checked with :func:`check_first_mask`).
        num_labels: largest id + 1.
        extractor, config: backbone and protocol.
        out: the masks folder; built under a temporary name and renamed when complete (an existing
            folder is replaced only then).
        overlay: optional picture: ``.mp4`` (overlay video of every ``every``-th frame, default all)
            or ``.png``/``.jpg`` (strip of every ``every``-th frame, default about ``strip_frames``).
        every: frame step of the overlay.

    Returns:
        A summary: frames written, objects, the overlay, and the run description.
    """
    out, source = Path(out), Path(video.info.source)
    if out.resolve() == source.resolve() or (overlay is not None and Path(overlay).resolve() == source.resolve()):
        raise InputError(f"output {out} would replace the input {source}", hint="choose another --out / --overlay")
    names = video.frame_names
    results = propagate_frames(video, first_labels, extractor, config, num_labels, total=len(video))
    written = 0

    def save(index: int, labels: np.ndarray, folder: Path) -> None:
        nonlocal written
        name = names[index] if index < len(names) else f"{index:05d}"
        write_label_png(folder / f"{name}.png", labels)
        written += 1

    run = describe_run(extractor, config)
    with atomic_directory(out) as folder:
        if overlay is not None and Path(overlay).suffix.lower() == ".mp4":
            step = every or 1

            def overlay_frames() -> Iterator[np.ndarray]:
                for index, (frame, labels) in enumerate(results):
                    save(index, labels, folder)
                    if index % step == 0:
                        yield overlay_frame(frame, labels)

            write_video(overlay, overlay_frames(), fps=(video.info.fps or 24.0) / step)
        else:
            step = every or max(1, math.ceil(len(video) / strip_frames))
            thumbnails = []
            for index, (frame, labels) in enumerate(results):
                save(index, labels, folder)
                if overlay is not None and index % step == 0:
                    thumbnails.append(thumbnail(frame, labels, text=f"frame {index}"))
            if overlay is not None:
                write_image(overlay, label_strip(thumbnails))
        write_json(
            folder / RECORD,
            {"tool": f"dense-retrieval {__version__}", "source": str(source), "frames": written, "run": run},
        )
    return {
        "out": str(out),
        "frames": written,
        "objects": num_labels - 1,
        "overlay": str(overlay) if overlay is not None else None,
        "run": run,
    }
