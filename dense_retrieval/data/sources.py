"""Inputs given as a mix of images, image folders and video files, streamed as one sequence of frames."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .images import collect_images, read_image
from .video import open_video

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def open_sources(
    inputs: list[str | os.PathLike], start: int = 0, stop: int | None = None, decoder: str = "pil"
) -> tuple[list[str], Iterator[tuple[str, np.ndarray]]]:
    """Names and a lazy stream of ``(name, uint8 [H, W, 3] frame)`` for ``inputs``.

    Every input is checked before the stream starts (missing paths, empty folders, videos that cannot be
    opened raise at once); images are decoded only as the stream is consumed. Video frames are named
    ``<video file name>/<frame number>``, images by their path. The names list is what the headers
    promise; the stream names what was actually decoded (a truncated video yields fewer frames, with a
    warning from :class:`~.video.VideoFrames`).

    Args:
        start, stop: stream only frames ``start .. stop - 1`` of the sequence (one rank's share under
            torchrun); images outside are never read, videos outside are skipped. ``names`` is always
            the whole sequence.
        decoder: how image files are decoded (:func:`~.images.read_image`; ``"opencv"`` for the CRW and
            DINO recipes); video files are always decoded by OpenCV.
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

    end = len(names) if stop is None else min(stop, len(names))
    counts = [len(open_video(source).frame_names) if isinstance(source, Path) else len(source) for source in plan]

    def stream() -> Iterator[tuple[str, np.ndarray]]:
        first = 0
        for source, count in zip(plan, counts, strict=True):
            lo, hi = max(start - first, 0), min(end - first, count)
            first += count
            if lo >= hi:
                continue
            if isinstance(source, Path):
                frames = itertools.islice(open_video(source), lo, hi)
                for index, frame in enumerate(frames, start=lo):
                    yield f"{source.name}/{index:05d}", frame
            else:
                for path in source[lo:hi]:
                    yield str(path), read_image(path, decoder)

    return names, stream()
