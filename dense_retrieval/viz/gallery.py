"""Retrieval galleries: the query segment beside its hits, masks outlined, scores and labels written."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import caption, hstack, resize_to_height, tile
from .overlay import dim_outside, outline_mask

QUERY_COLOUR = (255, 220, 0)
HIT_COLOUR = (0, 230, 80)


@dataclass(frozen=True)
class GalleryItem:
    """One panel: an image, the segment's mask (None: the image is missing), a caption."""

    image: np.ndarray  # uint8 [H, W, 3]
    mask: np.ndarray | None  # bool [H, W]
    text: str


def retrieval_row(query: GalleryItem, hits: list[GalleryItem], height: int = 160) -> np.ndarray:
    """One row: the query (outside of its segment darkened, segment outlined) then each hit outlined.

    Args:
        query: the query image and segment.
        hits: best first; their captions should carry rank, score and label.
        height: panel height in pixels (width follows each image's aspect).

    Returns:
        uint8 [height + caption, W, 3].
    """
    panels = [_panel(query, QUERY_COLOUR, height, dim=True)]
    panels += [_panel(hit, HIT_COLOUR, height, dim=False) for hit in hits]
    return hstack(panels, gap=6)  # panels share one height; widths follow each image


def retrieval_gallery(rows: list[np.ndarray]) -> np.ndarray:
    """Stack rows from :func:`retrieval_row` (one per query) into one picture."""
    return tile(rows, columns=1, gap=12)


def _panel(item: GalleryItem, colour: tuple[int, int, int], height: int, dim: bool) -> np.ndarray:
    if item.mask is None:
        picture = np.full((height, height, 3), 200, dtype=np.uint8)
    else:
        picture = dim_outside(item.image, item.mask) if dim else item.image
        thickness = max(2, round(2 * item.image.shape[0] / height))  # about 2 px after resizing
        picture = resize_to_height(outline_mask(picture, item.mask, colour, thickness), height)
    return caption(picture, item.text)
