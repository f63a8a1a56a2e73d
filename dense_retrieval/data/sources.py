"""Inputs given as a mix of images, image folders and video files, streamed as one sequence of frames."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .images import collect_images, read_image
from .video import open_video

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def open_sources(inputs: list[str | os.PathLike]) -> tuple[list[str], Iterator[tuple[str, np.ndarray]]]:
    """Names and a lazy stream of ``(name, uint8 [H, W, 3] frame)`` for ``inputs``.

    Every input is checked before the stream starts (missing paths, empty folders, videos that cannot be
    opened raise at once); images are decoded only as the stream is consumed. Video frames are named
    ``<video file name>/<frame number>``, images by their path. The names list is what the headers
    promise; the stream names what was actually decoded (a truncated video yields fewer frames, with a
    warning from :class:`~.video.VideoFrames`).
    """
    names: list[str] = []
    plan: list[Path | list[Path]] = []
    for item in map(Path, inputs):
        if item.is_file() and item.suffix.lower() in VIDEO_SUFFIXES:
            video = open_video(item)
            names += [f"{item.name}/{frame}" for frame in video.frame_names]
            plan.append(item)
        else:
            paths = collect_images([item])
            names += [str(path) for path in paths]
            plan.append(paths)

    def stream() -> Iterator[tuple[str, np.ndarray]]:
        for source in plan:
            if isinstance(source, Path):
                for index, frame in enumerate(open_video(source)):
                    yield f"{source.name}/{index:05d}", frame
            else:
                for path in source:
                    yield str(path), read_image(path)

    return names, stream()
