"""Arranging pictures: resizing to a common height, rows of panels, tiling, captions."""

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
    # Pillow's built-in font draws a 2-pixel space; doubling it keeps words apart
    ImageDraw.Draw(band).text((3, 2), text.replace(" ", "  "), fill=(0, 0, 0), font=ImageFont.load_default())
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


def hstack(images: list[np.ndarray], gap: int = 6, background: int = 255) -> np.ndarray:
    """Place uint8 [H, W_i, 3] images of one height side by side, ``gap`` pixels apart."""
    if not images:
        raise ValueError("nothing to place")
    heights = {image.shape[0] for image in images}
    if len(heights) != 1:
        raise ValueError(f"images differ in height: {sorted(heights)}")
    spacer = np.full((images[0].shape[0], gap, 3), background, dtype=np.uint8)
    pieces = [piece for image in images for piece in (image, spacer)][:-1]
    return np.concatenate(pieces, axis=1)


def captioned_row(pictures: list[np.ndarray], captions: list[str], height: int = 160, gap: int = 6) -> np.ndarray:
    """Pictures resized to ``height`` rows (aspect kept), each captioned, side by side.

    Args:
        pictures: uint8 [H_i, W_i, 3] each (feature grids, overlays, photos of any size).
        captions: one text per picture.
        height: panel height before the caption band.
        gap: white pixels between panels.

    Returns:
        uint8 [height + caption band, sum of widths + gaps, 3].
    """
    if len(pictures) != len(captions):
        raise ValueError(f"{len(pictures)} pictures but {len(captions)} captions")
    return hstack([caption(resize_to_height(p, height), text) for p, text in zip(pictures, captions, strict=True)], gap)
