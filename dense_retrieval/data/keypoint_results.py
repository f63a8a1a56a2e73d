"""Predicted keypoints of one video as a JSON file.

    OUT/<video>/joints.json   {"video", "action", "frame_size": [H, W], "grid": [h, w],
                               "joints": [[[x, y] | null] * J] * T}   (x, y: zero-based frame pixels)

JSON, never pickle: a file read back is checked against this schema before anything uses it, so an
evaluation can rerun on the predictions alone.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from .atomic import write_json

JOINTS_FILE = "joints.json"


def write_joints_file(
    path: str | os.PathLike,
    video: str,
    action: str,
    frame_size: tuple[int, int],
    grid: tuple[int, int],
    joints: np.ndarray,
) -> None:
    """Write predictions: ``joints`` float ``[T, J, 2]`` ``(x, y)`` frame pixels, NaN where a joint has none."""
    rows = [[None if not np.isfinite(point).all() else [round(float(v), 3) for v in point] for point in frame]
            for frame in np.asarray(joints, dtype=np.float64)]  # fmt: skip
    document = {
        "video": video,
        "action": action,
        "frame_size": [int(frame_size[0]), int(frame_size[1])],
        "grid": [int(grid[0]), int(grid[1])],
        "joints": rows,
    }
    write_json(path, document)


def read_joints_file(path: str | os.PathLike, num_joints: int) -> np.ndarray:
    """Predictions of one video as float64 ``[T, J, 2]`` (NaN where a joint has no position).

    Raises:
        DataFormatError: the file is missing, not JSON, or does not follow the schema (named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"no predictions file {path}", hint="run `jhmdb propagate` into this folder first")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, OSError) as error:
        raise DataFormatError(f"{path} is not a predictions file (not JSON: {error})") from None
    frames = document.get("joints") if isinstance(document, Mapping) else None
    if not isinstance(frames, list) or not frames:
        raise DataFormatError(f"{path}: 'joints' is not a non-empty list of frames", hint="rerun `jhmdb propagate`")
    joints = np.full((len(frames), num_joints, 2), np.nan)
    for t, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != num_joints:
            raise DataFormatError(f"{path}: frame {t} does not list {num_joints} joints")
        for j, point in enumerate(frame):
            if point is None:
                continue
            if not (isinstance(point, list) and len(point) == 2 and all(_finite(v) for v in point)):
                raise DataFormatError(f"{path}: frame {t} joint {j} is {str(point)[:40]}, not [x, y] or null")
            joints[t, j] = point
    return joints


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
