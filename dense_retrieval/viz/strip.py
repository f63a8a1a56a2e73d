"""Pictures of a propagation a person can look at: label overlays, in a strip or as video frames."""

from __future__ import annotations

import numpy as np

from .layout import caption, resize_to_height, tile
from .overlay import overlay_labels


def overlay_frame(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """One frame with its labels blended in DAVIS colours and outlined: uint8 [H, W, 3]."""
    return overlay_labels(frame, labels, alpha=alpha, outline=True)


def thumbnail(frame: np.ndarray, labels: np.ndarray, height: int = 160, text: str = "") -> np.ndarray:
    """An overlay shrunk to ``height`` rows, with ``text`` underneath when given."""
    small = resize_to_height(overlay_frame(frame, labels), height)
    return caption(small, text) if text else small


def label_strip(thumbnails: list[np.ndarray], columns: int | None = None) -> np.ndarray:
    """Tile thumbnails (see :func:`thumbnail`) into one image, ``columns`` per row (default: up to 4)."""
    if not thumbnails:
        raise ValueError("no thumbnails to tile")
    return tile(thumbnails, columns or min(4, len(thumbnails)))
