"""The retrieval gallery: query highlighted, hits outlined, captions, missing images."""

from __future__ import annotations

import numpy as np

from dense_retrieval.viz.gallery import HIT_COLOUR, QUERY_COLOUR, GalleryItem, retrieval_gallery, retrieval_row


def _item(height: int, width: int, text: str, missing: bool = False) -> GalleryItem:
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 4 : height // 2, width // 4 : width // 2] = True
    return GalleryItem(image, None if missing else mask, text)


def test_row_panels_share_a_height_and_show_both_colours():
    row = retrieval_row(_item(100, 150, "query"), [_item(80, 80, "#1 0.9 cat"), _item(60, 200, "#2", missing=True)], 64)
    assert row.dtype == np.uint8 and row.shape[0] == 64 + 18  # panel + caption band
    colours = {tuple(c) for c in row.reshape(-1, 3)}
    assert QUERY_COLOUR in colours and HIT_COLOUR in colours
    # the query is darkened outside its segment: darker than the plain grey of the hits
    assert row[5, 5].max() < 128
    assert row.shape[1] == round(150 * 64 / 100) + 64 + 64 + 2 * 6  # widths follow aspect; grey square if missing


def test_gallery_stacks_rows():
    rows = [retrieval_row(_item(50, 50, "q"), [_item(50, 50, "h")], 40) for _ in range(3)]
    gallery = retrieval_gallery(rows)
    assert gallery.shape[0] == 3 * rows[0].shape[0] + 2 * 12
