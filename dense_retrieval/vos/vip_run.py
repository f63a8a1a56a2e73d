"""VIP part propagation (CRW's protocol): one folder of part PNGs per video, resumable.

    OUT/propagation.json        what made the predictions (protocol, backbone, VIP root and list) and the
                                videos finished
    OUT/<video>/<frame>.png     predicted part ids on every annotated frame, at the annotation's size, in
                                VIP's palette (the PASCAL VOC colour map), ready for `vip evaluate`
    OUT/<video>/overlay.jpg     with ``overlay="strip"``: about 8 annotated frames with their parts
    OUT/<video>/overlay.mp4     with ``overlay="video"``: every frame with its parts

The first annotated frame's parts travel through every later frame by the one frame loop
(:func:`~.frames.propagate_soft`). A frame's parts are read out as CRW does: soft labels upsampled
bilinearly to the network input (560x560 under ``crw-vip``), argmax, then resized to the frame with
nearest-neighbour sampling. The first annotated frame is written too (its annotation passed through the
feature grid and back), as CRW writes and scores it. The folder follows :mod:`.results_run`.
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
from ..data.masks import write_label_png
from ..data.video import write_video
from ..data.vip import VipDataset
from ..errors import DataFormatError, InputError
from ..propagation.config import PropagationConfig
from ..propagation.labels import grid_to_labels, labels_to_grid
from ..viz.strip import label_strip, overlay_frame, thumbnail
from .frames import check_first_mask, propagate_soft, run_record
from .results_run import Commit, VideoResult, propagate_into, select_names

OVERLAYS = ("strip", "video")
STRIP_FRAMES = 8
READOUT = "soft labels bilinear to the network input, argmax, nearest to the frame (CRW)"


def propagate_vip(
    dataset: VipDataset,
    out: str | os.PathLike,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    videos: Sequence[str] | None = None,
    overwrite: bool = False,
    overlay: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Propagate the first annotated frame's parts of every (or the named) video of ``dataset`` into ``out``.

    Args:
        dataset: the VIP root and video list.
        out: the results folder (resumed when it holds a run of the same configuration).
        extractor: backbone + feature settings (CRW: frames stretched to 560x560, stride 8).
        config: the propagation protocol.
        videos: names to run (default: the list's videos).
        overwrite: replace results made with another configuration (otherwise an error).
        overlay: ``"strip"`` or ``"video"``: a picture of each video propagated now, in its folder.
        log: receives one line per video.

    Returns:
        A summary: the run's configuration and, per video, frames, part labels, seconds and status.
    """
    if overlay is not None and overlay not in OVERLAYS:
        raise InputError(f"unknown overlay {overlay!r}", hint=f"use one of {', '.join(OVERLAYS)}")
    names = select_names(dataset.videos, videos, f"the VIP list {dataset.list_path}")
    for name in names:  # bad input fails before anything is written
        _check_video(dataset, name)
    vip = {"root": str(dataset.root.resolve()), "list": str(dataset.list_path.resolve()), "readout": READOUT}
    run = run_record(extractor, config, vip=vip)

    def propagate(name: str, commit: Commit) -> VideoResult:
        return propagate_vip_video(dataset, name, out, extractor, config, overlay, commit)

    def complete(folder: Path, entry: dict) -> bool:
        return folder.is_dir() and all((folder / f"{s}.png").is_file() for s in dataset.video(folder.name).annotated)

    return propagate_into(out, dataset.inputs(names), names, run, propagate, complete, overwrite, log)


def propagate_vip_video(
    dataset: VipDataset,
    name: str,
    out: str | os.PathLike,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    overlay: str | None = None,
    commit: Commit | None = None,
) -> VideoResult:
    """Propagate one video's first annotation and write ``out/<name>/<frame>.png`` for its annotated frames."""
    video = dataset.video(name)
    stems, annotated = video.frame_names, set(video.annotated)
    first = dataset.read_parts(video.annotations[stems[0]])
    size = first.shape[:2]
    num_labels = _check_first(first, video.frames[0], name)
    network_input = extractor.input_size(*size)
    start = time.perf_counter()

    def first_grid(grid: tuple[int, int]) -> torch.Tensor:
        return labels_to_grid(first, num_labels, grid, config.label_resize)

    def read_parts(soft: torch.Tensor) -> np.ndarray:
        labels = grid_to_labels(soft, network_input, normalize=config.normalize_prediction)
        labels = labels.to(torch.uint8).cpu().numpy()
        if labels.shape == size:
            return labels
        return np.asarray(Image.fromarray(labels).resize((size[1], size[0]), Image.Resampling.NEAREST))

    step = max(1, math.ceil(len(annotated) / STRIP_FRAMES))
    pictures: list[np.ndarray] = []
    done: list[VideoResult] = []
    then = (lambda: commit(done[0])) if commit is not None else None
    with atomic_directory(Path(out) / name, then=then, final=False) as folder:
        frames = (read_image(path, extractor.preprocessing.decode) for path in video.frames)
        loop = propagate_soft(frames, first_grid, extractor, config, len(video.frames), desc=name)

        def overlays():
            written = 0
            for stem, (frame, soft) in zip(stems, loop, strict=True):
                if stem not in annotated and overlay != "video":
                    continue
                with torch.inference_mode():
                    labels = read_parts(soft)
                if stem in annotated:
                    write_label_png(folder / f"{stem}.png", labels)
                    written += 1
                    if overlay == "strip" and (written - 1) % step == 0:
                        pictures.append(thumbnail(frame, labels, text=f"{name} {stem}"))
                if overlay == "video":
                    yield overlay_frame(frame, labels)

        if overlay == "video":
            write_video(folder / "overlay.mp4", overlays(), fps=5.0)
        else:
            for _ in overlays():
                pass
        if pictures:
            write_image(folder / "overlay.jpg", label_strip(pictures))
        done.append(VideoResult(name, len(stems), num_labels - 1, time.perf_counter() - start, "done"))
    return done[0]


def _check_video(dataset: VipDataset, name: str) -> None:
    """Frames, a first annotation with parts, of the first frame's size (headers and one PNG)."""
    video = dataset.video(name)
    first = dataset.read_parts(video.annotations[video.frame_names[0]])
    _check_first(first, video.frames[0], name)


def _check_first(first: np.ndarray, frame: Path, name: str) -> int:
    try:
        with Image.open(frame) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise DataFormatError(f"unreadable frame {frame}: {error}") from None
    return check_first_mask(first, (height, width), f"{name}: first annotation {frame.stem}.png")
