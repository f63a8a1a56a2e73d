"""Scene composition for the synthetic datasets: object tracks, sequence frames, VOC images (pure compute).

No I/O: functions take a random generator and return arrays; :mod:`.synth` writes them to disk.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from .assets import (
    BACKGROUNDS,
    SYNTH_CLASSES,
    SynthClass,
    background_texture,
    object_texture,
    shape_mask,
)

MAX_ATTEMPTS = 50


@dataclass
class ObjectTrack:
    """One object of a sequence: class, base box size, per-frame centre and scale."""

    spec: SynthClass
    base: tuple[float, float]  # (h, w) at scale 1
    centres: np.ndarray  # float [T, 2] (y, x)
    scales: np.ndarray  # float [T]

    def box(self, t: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the object in frame ``t``."""
        h = max(int(round(self.base[0] * self.scales[t])), 2)
        w = max(int(round(self.base[1] * self.scales[t])), 2)
        cy, cx = self.centres[t]
        return int(round(cy - h / 2)), int(round(cx - w / 2)), h, w


def plan_sequence(
    rng: np.random.Generator, size: tuple[int, int], num_frames: int, num_objects: int
) -> tuple[list[ObjectTrack], dict]:
    """Choose ``num_objects`` distinct classes and draw their tracks through ``num_frames`` frames.

    Tracks are redrawn until every object shows >= 60% of its silhouette in frame 0 and >= 20% in every
    frame, and (with several objects and >= 3 frames) one passes in front of another in some frame.

    Args:
        rng: the random generator.
        size: (H, W) of the frames.
        num_frames: T.
        num_objects: 1-3; track k is drawn in front of tracks 0..k-1 and gets object id k + 1.

    Returns:
        The tracks, and stats: ``occluded_frames`` (frames where some object shows < 97% of its
        silhouette) and ``min_visible_fraction`` over all objects and frames.
    """
    classes = [SYNTH_CLASSES[i] for i in rng.permutation(len(SYNTH_CLASSES))[:num_objects]]
    best = None
    for _ in range(MAX_ATTEMPTS):
        tracks = _draw_tracks(rng, size, num_frames, classes)
        fractions = np.stack([_visible_fractions(size, tracks, t) for t in range(num_frames)])  # [T, n]
        occluded = [t for t in range(num_frames) if (fractions[t] < 0.97).any()]
        wants_occlusion = num_objects > 1 and num_frames >= 3
        ok = fractions[0].min() >= 0.6 and fractions.min() >= 0.2 and (occluded or not wants_occlusion)
        stats = {"occluded_frames": occluded, "min_visible_fraction": round(float(fractions.min()), 3)}
        if ok:
            return tracks, stats
        if best is None or fractions[0].min() > best[2]:
            best = (tracks, stats, fractions[0].min())
    return best[0], best[1]


def _draw_tracks(
    rng: np.random.Generator, size: tuple[int, int], num_frames: int, classes: list[SynthClass]
) -> list[ObjectTrack]:
    """Smooth paths: one object drifts near the centre (behind), the others sweep across it (in front)."""
    height, width = size
    side = min(height, width)
    t = np.arange(num_frames, dtype=np.float64)
    ease = (1 - np.cos(np.pi * t / max(num_frames - 1, 1))) / 2  # 0 -> 1, smooth at both ends
    flip = rng.random() < 0.5
    tracks = []
    for k, spec in enumerate(classes):
        if len(classes) == 1:
            extent = rng.uniform(0.42, 0.55) * side
            start = (rng.uniform(0.4, 0.6) * height, rng.uniform(0.3, 0.4) * width)
            end = (rng.uniform(0.4, 0.6) * height, rng.uniform(0.6, 0.7) * width)
        elif k == 0:
            extent = rng.uniform(0.45, 0.58) * side
            start = (rng.uniform(0.45, 0.55) * height, rng.uniform(0.42, 0.48) * width)
            end = (rng.uniform(0.45, 0.55) * height, rng.uniform(0.52, 0.58) * width)
        else:
            extent = rng.uniform(0.3, 0.4) * side
            offset = (-1) ** k * rng.uniform(0.12, 0.25) * height
            start = (0.5 * height + offset, 0.15 * width)
            end = (0.5 * height + offset * (1 if k == 1 else -1), 0.85 * width)
            if k == 2:
                start, end = end, start
        if flip:
            start, end = (start[0], width - start[1]), (end[0], width - end[1])
        wobble = 0.04 * height * np.sin(2 * np.pi * t / max(num_frames, 8) + rng.uniform(0, 2 * np.pi))
        centres = np.stack([start[0] + (end[0] - start[0]) * ease + wobble, start[1] + (end[1] - start[1]) * ease], 1)
        scales = 1 + rng.uniform(-0.25, 0.25) * ease
        base_h = min(extent * math.sqrt(spec.aspect), 0.85 * height / scales.max())
        base_w = min(base_h / spec.aspect, 0.85 * width / scales.max())
        track = ObjectTrack(spec, (base_w * spec.aspect, base_w), centres, scales)
        for i in range(num_frames):  # keep the whole box inside the frame
            h, w = track.base[0] * scales[i], track.base[1] * scales[i]
            centres[i, 0] = np.clip(centres[i, 0], h / 2 + 1, height - h / 2 - 1)
            centres[i, 1] = np.clip(centres[i, 1], w / 2 + 1, width - w / 2 - 1)
        tracks.append(track)
    return tracks


def _visible_fractions(size: tuple[int, int], tracks: list[ObjectTrack], t: int) -> np.ndarray:
    """Visible fraction of each object's silhouette in frame ``t``: float [n]."""
    labels = _label_map(size, tracks, t)
    areas = np.array([shape_mask(tr.spec.name, tr.box(t)[2:]).sum() for tr in tracks], dtype=np.float64)
    visible = np.bincount(labels.ravel(), minlength=len(tracks) + 1)[1:]
    return visible / np.maximum(areas, 1)


def _label_map(size: tuple[int, int], tracks: list[ObjectTrack], t: int) -> np.ndarray:
    """Object ids ``uint8 [H, W]`` of frame ``t``: later tracks are drawn in front."""
    labels = np.zeros(size, dtype=np.uint8)
    for object_id, track in enumerate(tracks, start=1):
        top, left, h, w = track.box(t)
        region, mask = _clip(size, top, left, shape_mask(track.spec.name, (h, w)))
        labels[region][mask] = object_id
    return labels


def render_sequence(
    rng: np.random.Generator,
    size: tuple[int, int],
    num_frames: int,
    tracks: list[ObjectTrack],
    background: str,
    binary: bool = False,
) -> tuple[Iterator[np.ndarray], Iterator[np.ndarray]]:
    """Render a planned sequence over a slowly panning background, lazily (one frame in memory).

    Args:
        rng: the random generator (pan, background crop, object textures).
        size: (H, W) of the frames.
        num_frames: T.
        tracks: from :func:`plan_sequence`; each object keeps one texture that moves and scales with it.
        background: a name from :data:`BACKGROUNDS`.
        binary: label maps 0/1 (DAVIS-2016) instead of object ids.

    Returns:
        Two iterators of T items: frames ``uint8 [H, W, 3]`` and label maps ``uint8 [H, W]`` (the visible
        object's id per pixel, 0 background).
    """
    height, width = size
    pan = (rng.uniform(0.0, 0.04) * height, rng.uniform(0.04, 0.1) * width)
    canvas = background_texture(rng, background, (height + int(math.ceil(pan[0])), width + int(math.ceil(pan[1]))))
    reverse = rng.random() < 0.5
    textures = []
    for track in tracks:
        top_scale = float(track.scales.max())
        big = (max(int(round(track.base[0] * top_scale)), 2), max(int(round(track.base[1] * top_scale)), 2))
        textures.append(object_texture(rng, track.spec, big))
    progress = np.linspace(0, 1, num_frames) if num_frames > 1 else np.zeros(1)

    def frame_at(t: int) -> np.ndarray:
        shift = progress[num_frames - 1 - t] if reverse else progress[t]
        y, x = int(round(pan[0] * shift)), int(round(pan[1] * shift))
        frame = canvas[y : y + height, x : x + width].copy()
        for track, texture in zip(tracks, textures, strict=True):
            top, left, h, w = track.box(t)
            sprite = cv2.resize(texture, (w, h), interpolation=cv2.INTER_AREA)
            region, mask = _clip(size, top, left, shape_mask(track.spec.name, (h, w)))
            sprite = sprite[
                region[0].start - top : region[0].stop - top, region[1].start - left : region[1].stop - left
            ]
            frame[region][mask] = sprite[mask]
        return frame

    def labels_at(t: int) -> np.ndarray:
        labels = _label_map(size, tracks, t)
        return (labels > 0).astype(np.uint8) if binary else labels

    return (frame_at(t) for t in range(num_frames)), (labels_at(t) for t in range(num_frames))


def render_voc_image(
    rng: np.random.Generator, size: tuple[int, int], max_objects: int
) -> tuple[np.ndarray, np.ndarray, list[SynthClass], str]:
    """Compose one VOC-style image: 1..``max_objects`` objects of distinct classes on a photo background.

    Objects are drawn back to front; each placement is redrawn (up to :data:`MAX_ATTEMPTS` times) until
    every earlier object keeps at least half of its silhouette visible.

    Returns:
        image ``uint8 [H, W, 3]``, instance ids ``uint8 [H, W]`` (0 background, 1..n in drawing order;
        no void yet, see :func:`boundary_band`), the class of each instance, the background name.
    """
    height, width = size
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    image = background_texture(rng, background, size)
    count = int(rng.integers(1, max_objects + 1))
    specs = [SYNTH_CLASSES[i] for i in rng.permutation(len(SYNTH_CLASSES))[:count]]
    instances = np.zeros(size, dtype=np.uint8)
    areas: list[int] = []
    for k, spec in enumerate(specs, start=1):
        for _ in range(MAX_ATTEMPTS):
            extent = rng.uniform(0.35, 0.6) * min(height, width)
            h = min(extent * math.sqrt(spec.aspect), 0.92 * height)
            w = min(h / spec.aspect, 0.92 * width)
            h, w = max(int(round(w * spec.aspect)), 4), max(int(round(w)), 4)
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            mask = shape_mask(spec.name, (h, w))
            trial = instances.copy()
            trial[top : top + h, left : left + w][mask] = k
            visible = np.bincount(trial.ravel(), minlength=k + 1)[1:k]
            if all(v >= 0.5 * a for v, a in zip(visible, areas, strict=True)):
                break
        instances = trial
        areas.append(int(mask.sum()))
        texture = object_texture(rng, spec, (h, w))
        image[top : top + h, left : left + w][mask] = texture[mask]
    return image, instances, specs, background


def boundary_band(labels: np.ndarray, radius: int) -> np.ndarray:
    """``bool [H, W]``: pixels within ``radius`` of a change of label (VOC's void band)."""
    if radius == 0:
        return np.zeros(labels.shape, dtype=bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(labels, kernel) != cv2.erode(labels, kernel)


def _clip(size: tuple[int, int], top: int, left: int, mask: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray]:
    """The frame region covered by ``mask`` placed at (top, left), and the part of the mask inside it."""
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + mask.shape[0], size[0]), min(left + mask.shape[1], size[1])
    return (slice(y0, y1), slice(x0, x1)), mask[y0 - top : y1 - top, x0 - left : x1 - left]
