"""Keypoints drawn as a skeleton on frames: bones as coloured lines, joints as dots (OpenCV)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .layout import caption, resize_to_height, tile


def draw_skeleton(
    frame: np.ndarray,
    joints: np.ndarray,
    bones: Sequence[tuple[int, int]],
    truth: np.ndarray | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """The frame with ``joints`` drawn as a skeleton (and ``truth``, when given, as white rings).

    Args:
        frame: uint8 [H, W, 3] RGB.
        joints: float [J, 2] ``(x, y)`` pixels; a joint with NaN is not drawn, nor its bones.
        bones: pairs of joint indices; bone ``k`` gets the ``k``-th colour of a hue wheel.
        truth: float [J, 2] ground-truth ``(x, y)``, drawn as rings to compare with.
        thickness: line width in pixels (default: about 1/80 of the frame's short side, at least 1).

    Returns:
        uint8 [H, W, 3], a new image.
    """
    out = np.ascontiguousarray(frame, dtype=np.uint8).copy()
    width = thickness or max(1, round(min(out.shape[:2]) / 80))
    colours = _hue_wheel(len(bones))
    for (a, b), colour in zip(bones, colours, strict=True):
        if np.isfinite(joints[a]).all() and np.isfinite(joints[b]).all():
            cv2.line(out, _point(joints[a]), _point(joints[b]), colour, width, cv2.LINE_AA)
    for joint in joints:
        if np.isfinite(joint).all():
            cv2.circle(out, _point(joint), width + 1, (255, 255, 255), -1, cv2.LINE_AA)
    if truth is not None:
        for joint in truth:
            if np.isfinite(joint).all():
                cv2.circle(out, _point(joint), 2 * width + 2, (255, 255, 255), max(1, width // 2), cv2.LINE_AA)
    return out


def skeleton_strip(pictures: Sequence[np.ndarray], captions: Sequence[str], height: int = 160) -> np.ndarray:
    """Frames with their skeletons (:func:`draw_skeleton`) shrunk to ``height`` rows, captioned, tiled."""
    if not pictures:
        raise ValueError("no frames to tile")
    thumbnails = [caption(resize_to_height(p, height), text) for p, text in zip(pictures, captions, strict=True)]
    return tile(thumbnails, min(4, len(thumbnails)))


def _point(xy: np.ndarray) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def _hue_wheel(count: int) -> list[tuple[int, int, int]]:
    """``count`` saturated RGB colours evenly spaced in hue."""
    hues = np.linspace(0, 180, count, endpoint=False).astype(np.uint8)
    hsv = np.stack([hues, np.full(count, 255, np.uint8), np.full(count, 255, np.uint8)], axis=1)[None]
    return [tuple(int(c) for c in rgb) for rgb in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]]
