"""Arranging pictures: resizing to a common height, tiling in rows, captions."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def resize_to_height(image: np.ndarray, height: int, nearest: bool = False) -> np.ndarray:
    """Resize uint8 [H, W, 3] to ``height`` rows, keeping the aspect ratio."""
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize((width, height), resample))


def caption(image: np.ndarray, text: str, height: int = 18) -> np.ndarray:
    """Add a white band with ``text`` under ``image`` (uint8 [H, W, 3] -> uint8 [H + height, W, 3])."""
    band = Image.new("RGB", (image.shape[1], height), (255, 255, 255))
    ImageDraw.Draw(band).text((3, 2), text, fill=(0, 0, 0), font=ImageFont.load_default())
    return np.concatenate([image, np.asarray(band)], axis=0)


def tile(images: list[np.ndarray], columns: int, gap: int = 4, background: int = 255) -> np.ndarray:
    """Tile uint8 [H_i, W_i, 3] images row by row; cells are as large as the largest image."""
    if not images:
        raise ValueError("nothing to tile")
    cell_h = max(image.shape[0] for image in images)
    cell_w = max(image.shape[1] for image in images)
    rows = -(-len(images) // columns)
    canvas = np.full(
        (rows * cell_h + (rows - 1) * gap, columns * cell_w + (columns - 1) * gap, 3), background, dtype=np.uint8
    )
    for index, image in enumerate(images):
        top = (index // columns) * (cell_h + gap)
        left = (index % columns) * (cell_w + gap)
        canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
    return canvas
