"""The images a pretraining run learns from: image folders (recursive), video files, frame folders, DAVIS roots.

Every input is scanned once, before training:

- an image file is kept when PIL can read its header;
- a video file (``.mp4``, ``.avi`` ...) contributes every ``frame_step``-th frame (OpenCV reports the count);
- a folder is walked recursively in name order; frame folders are folders of images like any other;
- a DAVIS root (a folder holding ``JPEGImages/480p`` and ``Annotations/``), given directly or met
  during the walk, contributes its ``JPEGImages/480p/*`` frames only (never the annotation PNGs).

Unreadable files (a header PIL cannot parse, a video OpenCV cannot open) are skipped and counted, never
fatal; files that fail only later, when decoded in full, are skipped by the data set (counted in the log).
A path that does not exist is an error (a typo is not an unreadable file); so is a source without a
single readable image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.images import IMAGE_SUFFIXES, read_image
from ..data.sources import VIDEO_SUFFIXES
from ..data.video import open_video, read_video_frame
from ..errors import DataFormatError, InputError

DAVIS_FRAMES = Path("JPEGImages") / "480p"


@dataclass(frozen=True)
class SourceItem:
    """One training image: an image file, or frame ``frame`` of a video file."""

    path: Path
    frame: int | None = None

    def read(self) -> np.ndarray:
        """The image as ``uint8 [H, W, 3]`` RGB. Raises DataFormatError / InputError when unreadable."""
        if self.frame is None:
            return read_image(self.path)
        return read_video_frame(self.path, self.frame)

    def __str__(self) -> str:
        return str(self.path) if self.frame is None else f"{self.path}#{self.frame}"


@dataclass
class ImageSource:
    """The scanned inputs.

    Attributes:
        items: the images, in scan order.
        skipped: (path, reason) of every file skipped as unreadable.
        counts: images, videos, video_frames, davis_roots, skipped.
    """

    items: list[SourceItem]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def describe(self) -> dict:
        """A summary for the run record: counts and the first few skipped files."""
        return {**self.counts, "items": len(self.items), "skipped_examples": [list(s) for s in self.skipped[:5]]}


def scan_sources(inputs: Iterable[str | os.PathLike], frame_step: int = 1) -> ImageSource:
    """Scan ``inputs`` (files and folders) into an :class:`ImageSource`; see the module docstring.

    Args:
        inputs: image files, video files, folders (walked recursively), DAVIS roots.
        frame_step: keep every ``frame_step``-th frame of video files (1: all).

    Raises:
        InputError: no inputs, a path that does not exist, ``frame_step`` below 1, or nothing readable.
    """
    inputs = [Path(item) for item in inputs]
    if not inputs:
        raise InputError("no pretraining data given", hint="pass image folders, video files or a DAVIS root")
    if frame_step < 1:
        raise InputError(f"frame step must be at least 1, got {frame_step}")
    missing = [str(item) for item in inputs if not item.exists()]
    if missing:
        raise InputError(f"no such file or folder: {', '.join(missing)}", hint="check the paths")
    scan = _Scan(frame_step)
    for item in inputs:
        if item.is_dir():
            scan.folder(item)
        else:
            scan.file(item)
    counts = {**scan.counts, "skipped": len(scan.skipped)}
    source = ImageSource(scan.items, scan.skipped, counts)
    if not source.items:
        detail = f"; {len(scan.skipped)} unreadable file(s) skipped, e.g. {scan.skipped[0][0]}" if scan.skipped else ""
        raise InputError(
            f"no readable images or videos in {', '.join(map(str, inputs))}{detail}",
            hint=f"images end in {', '.join(IMAGE_SUFFIXES)}; videos in {', '.join(VIDEO_SUFFIXES)}",
        )
    return source


def is_davis_root(folder: Path) -> bool:
    """A folder in the DAVIS layout (JPEGImages/480p and Annotations/)."""
    return (folder / DAVIS_FRAMES).is_dir() and (folder / "Annotations").is_dir()


class _Scan:
    def __init__(self, frame_step: int):
        self.frame_step = frame_step
        self.items: list[SourceItem] = []
        self.skipped: list[tuple[str, str]] = []
        self.counts = {"images": 0, "videos": 0, "video_frames": 0, "davis_roots": 0}

    def folder(self, folder: Path) -> None:
        for directory, subdirs, files in os.walk(folder, followlinks=True):
            here = Path(directory)
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            if is_davis_root(here):
                self.counts["davis_roots"] += 1
                subdirs[:] = []
                self.folder_plain(here / DAVIS_FRAMES)
                continue
            for name in sorted(files):
                if not name.startswith("."):
                    self.file(here / name, quiet=True)

    def folder_plain(self, folder: Path) -> None:
        for directory, subdirs, files in os.walk(folder, followlinks=True):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    self.file(Path(directory) / name, quiet=True)

    def file(self, path: Path, quiet: bool = False) -> None:
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            self.video(path)
        elif suffix in IMAGE_SUFFIXES:
            self.image(path)
        elif not quiet:
            raise InputError(
                f"{path} is neither an image nor a video",
                hint=f"images end in {', '.join(IMAGE_SUFFIXES)}; videos in {', '.join(VIDEO_SUFFIXES)}",
            )

    def image(self, path: Path) -> None:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            self.skipped.append((str(path), _reason(error)))
            return
        if width < 1 or height < 1:
            self.skipped.append((str(path), "empty image"))
            return
        self.items.append(SourceItem(path))
        self.counts["images"] += 1

    def video(self, path: Path) -> None:
        try:
            count = len(open_video(path))
        except (DataFormatError, InputError) as error:
            self.skipped.append((str(path), _reason(error)))
            return
        frames = range(0, count, self.frame_step)
        self.items.extend(SourceItem(path, index) for index in frames)
        self.counts["videos"] += 1
        self.counts["video_frames"] += len(frames)


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or error.__class__.__name__
    return text[:200]
