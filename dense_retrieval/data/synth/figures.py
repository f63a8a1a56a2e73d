"""Articulated stick figures for the synthetic JHMDB and VIP sets (pure compute, no I/O).

A figure has JHMDB's 15 joints (:data:`~dense_retrieval.data.jhmdb.JOINTS`). Per frame its root walks
along a smooth path, the body bobs and every limb swings about its joint (sinusoids with random
phase), so the joint positions are known exactly. Each body part is a limb-shaped strip carrying its
own texture cut from a real photo; the texture moves, turns and stretches with the part (an affine
warp), as a sleeve or a trouser leg would. The part map labels every pixel with a VIP part id
(:data:`~dense_retrieval.data.vip.CLASSES`), parts drawn later in front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .assets import SYNTH_CLASSES, colour_jitter, crop_texture, photo

# VIP part ids (data/vip.py CLASSES)
HAT, FACE, UPPER_CLOTHES, PANTS = 1, 13, 4, 8
RIGHT_ARM, LEFT_ARM, RIGHT_LEG, LEFT_LEG, RIGHT_SHOE, LEFT_SHOE = 14, 15, 16, 17, 18, 19

# (part id, first joint, second joint, width as a fraction of the figure's height), back to front:
# the figure's left side is behind, its right side in front (it walks facing the camera's right)
_PARTS = (
    (PANTS, 6, 10, 0.085),  # left thigh
    (LEFT_LEG, 10, 14, 0.065),  # left shin
    (LEFT_ARM, 4, 8, 0.06),  # left upper arm
    (LEFT_ARM, 8, 12, 0.05),  # left forearm
    (UPPER_CLOTHES, 0, 1, 0.2),  # torso
    (PANTS, 5, 9, 0.085),  # right thigh
    (RIGHT_LEG, 9, 13, 0.065),  # right shin
    (RIGHT_ARM, 3, 7, 0.06),  # right upper arm
    (RIGHT_ARM, 7, 11, 0.05),  # right forearm
)


@dataclass
class FigureTrack:
    """The joints of one figure through a video and how its parts look.

    Attributes:
        joints: float64 ``[T, 15, 2]`` zero-based ``(x, y)`` pixels.
        height: the figure's height in pixels (neck to ankle is about 0.75 of it).
        textures: part id -> ``uint8 [h, w, 3]`` texture (the strip's length along w).
        facing: +1 walking toward +x, -1 toward -x (where the feet point).
    """

    joints: np.ndarray
    height: float
    textures: dict[int, np.ndarray]
    facing: float


def plan_figure(rng: np.random.Generator, size: tuple[int, int], num_frames: int) -> FigureTrack:
    """Draw a walking figure for frames of ``size`` = (H, W): its joints in every frame and its textures."""
    height, width = size
    figure = rng.uniform(0.7, 0.8) * height
    t = np.arange(num_frames, dtype=np.float64)
    ease = (1 - np.cos(np.pi * t / max(num_frames - 1, 1))) / 2
    start_x, end_x = rng.uniform(0.3, 0.4) * width, rng.uniform(0.6, 0.7) * width
    if rng.random() < 0.5:
        start_x, end_x = end_x, start_x
    period = rng.uniform(14, 22)
    phase = rng.uniform(0, 2 * np.pi)
    swing = 2 * np.pi * t / period + phase
    neck = np.stack(
        [start_x + (end_x - start_x) * ease, 0.5 * height - 0.3 * figure + 0.015 * figure * np.sin(2 * swing)], axis=1
    )
    joints = np.zeros((num_frames, 15, 2))
    joints[:, 0] = neck
    joints[:, 1] = neck + [0, 0.3 * figure]  # belly
    joints[:, 2] = neck + [0.01 * figure, -0.13 * figure]  # face
    for side, sign in ((3, 1.0), (4, -1.0)):  # shoulders
        joints[:, side] = neck + [sign * 0.1 * figure, 0.03 * figure]
    for side, sign in ((5, 1.0), (6, -1.0)):  # hips
        joints[:, side] = joints[:, 1] + [sign * 0.07 * figure, 0.06 * figure]
    amplitude = rng.uniform(0.35, 0.6)
    for shoulder, elbow, wrist, sign in ((3, 7, 11, 1.0), (4, 8, 12, -1.0)):  # arms swing against the legs
        upper = sign * amplitude * np.sin(swing)
        joints[:, elbow] = joints[:, shoulder] + 0.17 * figure * _direction(upper)
        joints[:, wrist] = joints[:, elbow] + 0.15 * figure * _direction(upper + 0.3 + 0.3 * np.sin(swing + 1))
    for hip, knee, ankle, sign in ((5, 9, 13, -1.0), (6, 10, 14, 1.0)):
        thigh = sign * amplitude * np.sin(swing)
        joints[:, knee] = joints[:, hip] + 0.2 * figure * _direction(thigh)
        joints[:, ankle] = joints[:, knee] + 0.2 * figure * _direction(thigh - 0.35 * (1 + np.sin(swing + sign)))
    textures = {
        part: _part_texture(rng) for part in sorted({p[0] for p in _PARTS} | {FACE, HAT, LEFT_SHOE, RIGHT_SHOE})
    }
    return FigureTrack(joints, figure, textures, 1.0 if end_x >= start_x else -1.0)


def render_figure(frame: np.ndarray, parts: np.ndarray, track: FigureTrack, t: int) -> None:
    """Draw the figure of frame ``t`` into ``frame`` (uint8 [H, W, 3]) and its part ids into ``parts``
    (uint8 [H, W]), in place, back to front."""
    joints = track.joints[t]
    size = track.height
    for part, first, second, width in _PARTS:
        _paint_strip(frame, parts, part, track.textures[part], joints[first], joints[second], width * size)
    head, neck = joints[2], joints[0]
    up = _unit(head - neck)
    _paint_strip(
        frame, parts, FACE, track.textures[FACE], head - 0.03 * size * up, head + 0.02 * size * up, 0.12 * size
    )
    _paint_strip(frame, parts, HAT, track.textures[HAT], head + 0.1 * size * up, head + 0.11 * size * up, 0.1 * size)
    for part, ankle in ((LEFT_SHOE, 14), (RIGHT_SHOE, 13)):
        toe = joints[ankle] + np.array([track.facing * 0.08, 0.01]) * size
        _paint_strip(frame, parts, part, track.textures[part], joints[ankle], toe, 0.05 * size)


def _paint_strip(
    frame: np.ndarray, parts: np.ndarray, part: int, texture: np.ndarray, a: np.ndarray, b: np.ndarray, width: float
) -> None:
    """Warp ``texture`` onto the strip from ``a`` to ``b`` (extended by half its width at both ends)."""
    axis = np.asarray(b, dtype=np.float64) - a
    length = float(np.hypot(*axis))
    u = axis / length if length > 1e-6 else np.array([0.0, 1.0])
    n = np.array([-u[1], u[0]])
    start = np.asarray(a, dtype=np.float64) - u * width / 2
    full = length + width
    th, tw = texture.shape[:2]
    # texture (s, r) -> frame: start + u * s * full / tw + n * (r / th - 0.5) * width
    matrix = np.array(
        [
            [u[0] * full / tw, n[0] * width / th, start[0] - n[0] * width / 2],
            [u[1] * full / tw, n[1] * width / th, start[1] - n[1] * width / 2],
        ]
    )
    out_size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpAffine(texture, matrix, out_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpAffine(np.ones((th, tw), np.uint8), matrix, out_size, flags=cv2.INTER_NEAREST) > 0
    frame[mask] = warped[mask]
    parts[mask] = part


def _part_texture(rng: np.random.Generator) -> np.ndarray:
    """A strip texture (32 x 96) from one of the photos, hue-jittered so that parts differ."""
    spec = SYNTH_CLASSES[int(rng.integers(len(SYNTH_CLASSES)))]
    texture = crop_texture(rng, photo(spec.source), spec.region, (32, 96), tint=spec.tint)
    return colour_jitter(rng, texture, hue_degrees=90.0)


def _direction(angle: np.ndarray) -> np.ndarray:
    """Unit vectors ``[T, 2]`` pointing down (+y) turned by ``angle`` radians toward +x."""
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = math.hypot(*vector)
    return vector / norm if norm > 1e-9 else np.array([0.0, -1.0])
