"""Label propagation through any video file or frame folder, written as masks plus a picture to look at."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import __version__
from ..backbone.features import FeatureExtractor
from ..data.atomic import atomic_directory, write_json
from ..data.images import write_image
from ..data.masks import write_label_png
from ..data.video import VideoFrames, write_video
from ..errors import InputError
from ..propagation.config import PropagationConfig
from ..viz.strip import label_strip, overlay_frame, thumbnail
from .frames import RECORD, propagate_frames, run_record


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

    run = run_record(extractor, config).as_dict()
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
