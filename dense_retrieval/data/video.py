"""Videos as streams of RGB frames: video files (OpenCV) and numbered frame folders; an MP4 writer.

Frames are read one at a time, so memory stays bounded by one frame whatever the video's length.
A frame folder holds one image per frame whose file names end in the frame number
(``00000.jpg``, ``frame_12.png``); the numbers must be consecutive and every frame the same size.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import DataFormatError, DenseRetrievalError, InputError, OutputExistsError
from .atomic import atomic_directory, atomic_path
from .images import IMAGE_SUFFIXES, check_pixels, check_utf8_name, open_checked, read_image, write_image

MP4_FOURCC = "mp4v"


class TruncatedVideoWarning(UserWarning):
    """A video file yielded fewer frames than its header declares (the CLI prints it as one line)."""


_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds.

    Attributes:
        source: the video file or frame folder.
        kind: "file" (decoded by OpenCV) or "frames" (a folder of images).
        count: number of frames (for files, as the container reports it).
        size: (H, W) of every frame.
        fps: frames per second (None for frame folders).
    """

    source: Path
    kind: str
    count: int
    size: tuple[int, int]
    fps: float | None


class VideoFrames:
    """The frames of a video file or frame folder, streamed as ``uint8 [H, W, 3]`` RGB.

    Opening checks the source (a file OpenCV can decode; a folder with consecutive frame numbers and
    one frame size) without decoding the whole video. Iterate as many times as needed.

    Args:
        source: a video file (MP4, AVI, ...) or a folder of numbered frame images.
        decoder: how a folder's frame images are decoded (:func:`~.images.read_image`); a video file's
            frames are always OpenCV's (``cv2.VideoCapture``).

    Raises:
        InputError: ``source`` does not exist.
        DataFormatError: the video cannot be opened or has no frames; the folder has no frames, a
            frame without a number, a gap in the numbering or frames of different sizes.
    """

    def __init__(self, source: str | os.PathLike, decoder: str = "pil"):
        self.source = Path(source)
        self.decoder = decoder
        if self.source.is_dir():
            self._paths: list[Path] | None = _numbered_frames(self.source)
            height, width = _frame_folder_size(self._paths)
            self.info = VideoInfo(self.source, "frames", len(self._paths), (height, width), None)
        elif self.source.is_file():
            self._paths = None
            self.info = _probe_video_file(self.source)
        else:
            raise InputError(f"video not found: {self.source}", hint="pass a video file or a folder of frames")

    def __len__(self) -> int:
        return self.info.count

    @property
    def frame_names(self) -> list[str]:
        """One name per frame: the file stems of a frame folder, ``00000``, ``00001``... for a video file."""
        if self._paths is not None:
            return [path.stem for path in self._paths]
        return [f"{index:05d}" for index in range(self.info.count)]

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._paths is not None:
            for path in self._paths:
                frame = read_image(path, self.decoder)
                self._check_size(frame, path.name)
                yield frame
            return
        with _silent_opencv():
            capture = cv2.VideoCapture(str(self.source))
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                self._check_size(frame, f"frame {index}")
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            capture.release()
        if index < self.info.count:
            warnings.warn(
                f"video {self.source} is truncated: its header says {self.info.count} frames, "
                f"{index} could be decoded; the output holds those {index}",
                TruncatedVideoWarning,
                stacklevel=2,
            )

    def _check_size(self, frame: np.ndarray, name: str) -> None:
        if frame.shape[:2] != self.info.size:
            height, width = frame.shape[:2]
            raise DataFormatError(
                f"{self.source}: {name} is {height}x{width} but the video is {self.info.size[0]}x{self.info.size[1]}",
                hint="all frames of a video must have the same size",
            )


def open_video(source: str | os.PathLike, decoder: str = "pil") -> VideoFrames:
    """Open a video file or frame folder for streaming; see :class:`VideoFrames` (``decoder``: frame images)."""
    return VideoFrames(source, decoder)


def read_video_frame(path: str | os.PathLike, index: int) -> np.ndarray:
    """Frame ``index`` of a video file as ``uint8 [H, W, 3]`` RGB (random access: OpenCV seeks, then decodes).

    Raises:
        InputError: the file does not exist.
        DataFormatError: the file cannot be opened or has no frame ``index``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video not found: {path}", hint="check the path")
    with _silent_opencv():
        capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataFormatError(f"cannot open video {path}", hint="check the file is a complete video")
        if index:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise DataFormatError(f"video {path} has no readable frame {index}", hint="re-encode or re-download it")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 24.0) -> VideoInfo:
    """Encode ``frames`` (``uint8 [H, W, 3]`` RGB, all one size) as an MP4 file (OpenCV 'mp4v').

    The file is written under a temporary ``.mp4`` name next to ``path`` and renamed when complete, so
    an interrupted write leaves no partial file. MPEG-4 needs even sizes: an odd height or width is
    padded by one replicated row or column, and the returned size says so.

    Args:
        path: the output file (``.mp4``).
        frames: an iterable of frames; consumed once, one frame in memory at a time.
        fps: frames per second stored in the file.

    Returns:
        The :class:`VideoInfo` of the written file.

    Raises:
        InputError: no frames, a frame that is not ``uint8 [H, W, 3]``, or frames of different sizes.
        DenseRetrievalError: this OpenCV build cannot encode 'mp4v' (write a frame folder with
            :func:`write_frames` instead).
    """
    path = Path(path)
    if fps <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    count, size, padded = 0, None, None
    with atomic_path(path) as tmp:
        writer = None
        try:
            for frame in frames:
                frame = _check_frame(frame, count)
                if size is None:
                    size = frame.shape[:2]
                    padded = (size[0] + size[0] % 2, size[1] + size[1] % 2)
                    writer = _open_writer(tmp, fps, padded)
                elif frame.shape[:2] != size:
                    raise InputError(
                        f"frame {count} is {frame.shape[0]}x{frame.shape[1]}, earlier frames are {size[0]}x{size[1]}",
                        hint="resize all frames to one size before writing a video",
                    )
                if padded != size:
                    frame = np.pad(frame, ((0, padded[0] - size[0]), (0, padded[1] - size[1]), (0, 0)), mode="edge")
                writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
                count += 1
        finally:
            if writer is not None:
                writer.release()
        if count == 0:
            raise InputError(f"no frames to write to {path}")
    return VideoInfo(path, "file", count, padded, float(fps))


def write_frames(
    folder: str | os.PathLike, frames: Iterable[np.ndarray], suffix: str = ".jpg", overwrite: bool = False
) -> int:
    """Write ``frames`` (``uint8 [H, W, 3]``) as ``00000<suffix>``, ``00001<suffix>``... in ``folder``.

    The folder appears complete or not at all (built under a temporary name, then renamed).

    Returns:
        The number of frames written.

    Raises:
        OutputExistsError: ``folder`` exists and is not empty, and ``overwrite`` is False.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise OutputExistsError(f"frame folder {folder} is not empty", hint="choose a new folder or overwrite it")
    count = 0
    with atomic_directory(folder) as tmp:
        for count, frame in enumerate(frames, start=1):
            write_image(tmp / f"{count - 1:05d}{suffix}", _check_frame(frame, count - 1))
        if count == 0:
            raise InputError(f"no frames to write to {folder}")
    return count


def _open_writer(tmp: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    with _silent_opencv():
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*MP4_FOURCC), float(fps), (size[1], size[0]))
    if not writer.isOpened():
        raise DenseRetrievalError(
            f"this OpenCV build cannot encode MP4 ({MP4_FOURCC!r})",
            hint="write the frames as an image folder instead (dense_retrieval.data.video.write_frames)",
        )
    return writer


def _check_frame(frame: np.ndarray, index: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame {index} must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    return frame


def _numbered_frames(folder: Path) -> list[Path]:
    """The frame images of ``folder`` sorted by their number; checks the numbering is consecutive."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if not files:
        raise DataFormatError(f"no frames in {folder}", hint=f"expected images ending in {', '.join(IMAGE_SUFFIXES)}")
    numbered: dict[int, Path] = {}
    for path in sorted(files):
        match = _NUMBER.search(path.stem)
        if match is None:
            raise DataFormatError(
                f"frame folder {folder}: {path.name} has no frame number",
                hint="name frames by number, e.g. 00000.jpg, 00001.jpg",
            )
        number = int(match.group(1))
        if number in numbered:
            raise DataFormatError(
                f"frame folder {folder}: {numbered[number].name} and {path.name} are both frame {number}"
            )
        numbered[number] = path
    numbers = sorted(numbered)
    for previous, current in zip(numbers[:-1], numbers[1:], strict=True):
        if current != previous + 1:
            missing = f"{previous + 1}" if current == previous + 2 else f"{previous + 1}-{current - 1}"
            raise DataFormatError(
                f"frame folder {folder}: gap in the numbering before {numbered[current].name} "
                f"(frame {missing} missing)",
                hint="restore the missing frames or renumber the folder consecutively",
            )
    return [numbered[number] for number in numbers]


def _frame_folder_size(paths: list[Path]) -> tuple[int, int]:
    """(H, W) shared by all frames, read from the file headers only."""
    first = None
    for path in paths:
        check_utf8_name(path)
        try:
            with open_checked(path, "frame") as image:
                width, height = image.size
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise DataFormatError(f"unreadable frame {path}: {error}", hint="re-export the frame") from None
        if first is None:
            first = (height, width)
        elif (height, width) != first:
            raise DataFormatError(
                f"frame folder {path.parent}: {path.name} is {height}x{width} but {paths[0].name} is "
                f"{first[0]}x{first[1]}",
                hint="all frames of a video must have the same size",
            )
    return first


def _probe_video_file(path: Path) -> VideoInfo:
    """Open ``path`` with OpenCV, decode its first frame, read count and fps."""
    with _silent_opencv():
        capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataFormatError(
                f"cannot open video {path}",
                hint="check the file is a complete video OpenCV can decode (MP4, AVI)",
            )
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width and height:
            check_pixels(width, height, f"video {path}")
        ok, frame = capture.read()
        if not ok:
            raise DataFormatError(f"video {path} has no readable frames", hint="re-encode or re-download it")
        count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 1)
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or None
    finally:
        capture.release()
    return VideoInfo(path, "file", count, (int(frame.shape[0]), int(frame.shape[1])), fps)


@contextlib.contextmanager
def _silent_opencv() -> Iterator[None]:
    """Keep OpenCV's and FFmpeg's own messages off stderr; errors are reported by our exceptions."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)
