"""JHMDB keypoint propagation (CRW's protocol): one folder per test video with its predicted joints, resumable.

    OUT/propagation.json        what made the predictions (protocol, backbone, keypoint encoding, JHMDB
                                root, split) and the videos finished
    OUT/<video>/joints.json     the 15 joints per frame in the frame's pixels (:mod:`~..data.keypoint_results`)
    OUT/<video>/overlay.jpg     with ``overlay="strip"``: about 8 frames with the predicted skeleton (and
                                the ground-truth joints as white rings)
    OUT/<video>/overlay.mp4     with ``overlay="video"``: every frame with them

The joints of frame 0 become Gaussian label channels on the feature grid; the one frame loop
(:func:`~.frames.propagate_soft`) carries them through the video, and each frame's joints are read
out of the propagated channels (:mod:`~..propagation.keypoints`). The folder follows
:mod:`.results_run` (resumable, locked, one configuration), so `jhmdb evaluate` can rerun on it alone.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..backbone.features import FeatureExtractor
from ..data.atomic import atomic_directory
from ..data.images import read_image, write_image
from ..data.jhmdb import JOINTS, SKELETON, JhmdbDataset
from ..data.keypoint_results import JOINTS_FILE, write_joints_file
from ..data.video import write_video
from ..errors import DataFormatError, InputError
from ..propagation.config import KeypointConfig, PropagationConfig
from ..propagation.keypoints import frame_to_grid, gaussian_grid, grid_to_frame, read_out
from ..viz.skeleton import draw_skeleton, skeleton_strip
from .frames import propagate_soft, run_record
from .results_run import Commit, VideoResult, propagate_into, select_names

OVERLAYS = ("strip", "video")
STRIP_FRAMES = 8


def propagate_jhmdb(
    dataset: JhmdbDataset,
    out: str | os.PathLike,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    keypoints: KeypointConfig,
    videos: Sequence[str] | None = None,
    overwrite: bool = False,
    overlay: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Propagate the frame-0 joints of every (or the named) test video of ``dataset`` into ``out``.

    Args:
        dataset: the JHMDB root and split.
        out: the results folder (resumed when it holds a run of the same configuration).
        extractor: backbone + feature settings (CRW: frames stretched to 320x320, stride 8).
        config: the propagation protocol.
        keypoints: how joints become label channels and come back.
        videos: names to run (default: the split's test videos).
        overwrite: replace results made with another configuration (otherwise an error).
        overlay: ``"strip"`` or ``"video"``: a picture of each video propagated now, in its folder.
        log: receives one line per video.

    Returns:
        A summary: the run's configuration and, per video, frames, joints, seconds and status.
    """
    if overlay is not None and overlay not in OVERLAYS:
        raise InputError(f"unknown overlay {overlay!r}", hint=f"use one of {', '.join(OVERLAYS)}")
    names = select_names(dataset.videos, videos, f"the test videos of JHMDB split {dataset.split}")
    for name in names:  # bad input fails before anything is written
        _check_video(dataset, name)
    jhmdb = {"root": str(dataset.root.resolve()), "split": dataset.split, "splits": str(dataset.splits.resolve())}
    run = run_record(extractor, config, keypoints=keypoints.describe(), jhmdb=jhmdb)

    def propagate(name: str, commit: Commit) -> VideoResult:
        return propagate_jhmdb_video(dataset, name, out, extractor, config, keypoints, overlay, commit)

    def complete(folder: Path, entry: dict) -> bool:
        return (folder / JOINTS_FILE).is_file()

    return propagate_into(out, dataset.inputs(names), names, run, propagate, complete, overwrite, log)


def propagate_jhmdb_video(
    dataset: JhmdbDataset,
    name: str,
    out: str | os.PathLike,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    keypoints: KeypointConfig,
    overlay: str | None = None,
    commit: Commit | None = None,
) -> VideoResult:
    """Propagate one video's frame-0 joints and write ``out/<name>/joints.json`` (and its overlay).

    The folder is built under a temporary name and swapped in complete; ``commit`` runs in the same
    commit section.
    """
    video = dataset.video(name)
    truth = dataset.joints(name)
    start = time.perf_counter()
    size = _frame_size(video.frames[0])  # every frame has it (the frame loop checks)

    def first_grid(grid: tuple[int, int]) -> torch.Tensor:
        return gaussian_grid(frame_to_grid(truth[0], size, grid), grid, keypoints.sigma)

    predicted, pictures, grid = [], [], (0, 0)
    step = max(1, math.ceil(len(video.frames) / STRIP_FRAMES))
    frames = (read_image(path, extractor.preprocessing.decode) for path in video.frames)
    loop = propagate_soft(frames, first_grid, extractor, config, len(video.frames), desc=name)
    for index, (frame, soft) in enumerate(loop):
        grid = tuple(soft.shape[1:])
        predicted.append(grid_to_frame(read_out(soft, keypoints.readout_topk), size, grid))
        if overlay == "video" or (overlay == "strip" and index % step == 0):
            known = truth[index] if index < len(truth) else None  # ground truth as rings, to compare
            pictures.append((index, draw_skeleton(frame, predicted[-1], SKELETON, truth=known)))
    joints = np.stack(predicted)
    result = VideoResult(name, len(predicted), len(JOINTS), time.perf_counter() - start, "done")
    then = (lambda: commit(result)) if commit is not None else None
    with atomic_directory(Path(out) / name, then=then, final=False) as folder:
        write_joints_file(folder / JOINTS_FILE, name, video.action, size, grid, joints)
        if overlay == "strip":
            strip = skeleton_strip([p for _, p in pictures], [f"{name[:24]} {i + 1}" for i, _ in pictures])
            write_image(folder / "overlay.jpg", strip)
        elif overlay == "video":
            write_video(folder / "overlay.mp4", (p for _, p in pictures), fps=10.0)
    return result


def _check_video(dataset: JhmdbDataset, name: str) -> None:
    """Frames, a readable joint file, a first frame whose header can be read (no decoding)."""
    _frame_size(dataset.video(name).frames[0])
    dataset.joints(name)


def _frame_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image from its header."""
    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except (OSError, SyntaxError, ValueError) as error:
        raise DataFormatError(f"unreadable frame {path}: {error}") from None
