"""Synthetic DAVIS data for the scoring tests: moving objects, perturbations, vos-benchmark runs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dense_retrieval.data.davis import write_davis_sequence, write_image_set
from dense_retrieval.data.masks import write_label_png


def moving_objects(num_frames: int, height: int, width: int, num_objects: int) -> list[np.ndarray]:
    """Label maps uint8 [H, W] of ``num_objects`` ellipses moving smoothly; all present in every frame."""
    frames = []
    for t in range(num_frames):
        labels = np.zeros((height, width), np.uint8)
        for k in range(1, num_objects + 1):
            cy = int(height * (0.5 + 0.3 * np.sin(0.2 * t + k)))
            cx = int(width * (k / (num_objects + 1)) + 0.05 * width * np.cos(0.15 * t * k))
            axes = (max(2, width // (4 * num_objects + 2)), max(2, height // 6))
            cv2.ellipse(labels, (cx, cy), axes, 15 * t, 0, 360, k, -1)
        frames.append(labels)
    return frames


def perturb(labels: np.ndarray, key: int) -> np.ndarray:
    """A deterministic corruption: erode, dilate, shift, a dropped frame, or missing stripes."""
    kind = key % 5
    if kind == 0:
        return cv2.erode(labels, np.ones((5, 5), np.uint8))
    if kind == 1:
        return cv2.dilate(labels, np.ones((7, 7), np.uint8))
    if kind == 2:
        return np.roll(labels, (key % 7 - 3, key % 11 - 5), axis=(0, 1))
    if kind == 3 and key % 2:
        return np.zeros_like(labels)
    out = labels.copy()
    out[:, key % 5 :: 9] = 0
    return out


def write_dataset(root: Path, sequences: dict[str, list[np.ndarray]], year: str = "2017", split: str = "val") -> None:
    """A DAVIS layout: black JPEG frames, the given annotations, and ImageSets/<year>/<split>.txt."""
    for name, labels in sequences.items():
        frames = [np.zeros((*labels[0].shape, 3), np.uint8)] * len(labels)
        write_davis_sequence(root, name, frames, labels, year=year)
    write_image_set(root, list(sequences), year=year, split=split)


def write_results(results: Path, predictions: dict[str, list[np.ndarray]], binary: bool = False) -> None:
    """``results/<seq>/<00000>.png`` for every frame (indexed PNGs, or 0/255 when ``binary``)."""
    for name, labels in predictions.items():
        for t, frame in enumerate(labels):
            write_label_png(results / name / f"{t:05d}.png", frame, binary=binary)


def vos_per_frame(gts: list[np.ndarray], preds: list[np.ndarray]) -> tuple[dict, dict]:
    """vos-benchmark's per-object per-frame J and F (fractions) over the frames given."""
    from vos_benchmark.evaluator import Evaluator

    evaluator = Evaluator()
    for gt, pred in zip(gts, preds, strict=True):
        evaluator.feed_frame(pred, gt)
    return dict(evaluator.object_iou), dict(evaluator.boundary_f)
