"""Label masks as PNG files: indexed (palette) PNGs, 0/255 binary PNGs, RGB colour masks.

DAVIS-2017 and PASCAL VOC store labels as indexed PNGs with the PASCAL VOC colour map;
DAVIS-2016 stores one object as a 0/255 grayscale PNG.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataFormatError, InputError
from .atomic import atomic_path
from .images import check_pixels


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (also DAVIS-2017's): ``uint8 [num_colors, 3]``.

    Colour ``i`` spreads the bits of ``i`` over the high bits of R, G and B.
    """
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


DAVIS_PALETTE = voc_palette()


def read_label_png(path: str | os.PathLike, binary: bool = False) -> np.ndarray:
    """Read a label PNG as ``uint8 [H, W]`` label indices.

    Args:
        path: an indexed ('P'), grayscale ('L') or RGB PNG.
        binary: the file is a 0/255 mask of one object (DAVIS-2016): nonzero becomes 1.

    RGB masks are accepted only when every colour is exactly a palette colour; the index of that
    colour is the label. Anything else raises :class:`DataFormatError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"mask not found: {path}", hint="check the path and the frame numbering")
    try:
        with Image.open(path) as image:
            check_pixels(image.size[0], image.size[1], f"mask {path}")
            image.load()
            mode = image.mode
            array = np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataFormatError(f"unreadable mask {path}: {error}", hint="re-export it as a PNG") from None
    if mode in ("P", "L"):
        labels = array.astype(np.uint8, copy=False)
    elif mode in ("1", "I", "I;16"):
        labels = array.astype(np.uint8) if array.max(initial=0) < 256 else None
        if labels is None:
            raise DataFormatError(f"mask {path} has labels above 255", hint="save labels as an indexed PNG")
    elif mode in ("RGB", "RGBA"):
        labels = _rgb_to_labels(array[..., :3], path)
    else:
        raise DataFormatError(f"mask {path} has image mode {mode!r}", hint="save it as an indexed (P) PNG")
    if binary:
        return (labels != 0).astype(np.uint8)
    return labels


def _rgb_to_labels(rgb: np.ndarray, path: Path) -> np.ndarray:
    """Map an RGB colour mask ``uint8 [H, W, 3]`` onto palette indices, exactly or not at all."""
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    palette_codes = (
        (DAVIS_PALETTE[:, 0].astype(np.int32) << 16) | (DAVIS_PALETTE[:, 1].astype(np.int32) << 8) | DAVIS_PALETTE[:, 2]
    )
    lookup = {int(code): index for index, code in reversed(list(enumerate(palette_codes)))}
    unique = np.unique(codes)
    unknown = [int(code) for code in unique if int(code) not in lookup]
    if unknown:
        code = unknown[0]
        colour = ((code >> 16) & 255, (code >> 8) & 255, code & 255)
        raise DataFormatError(
            f"RGB mask {path} has colour {colour} that is not in the DAVIS/VOC palette",
            hint="save masks as indexed PNGs (mode 'P') with the DAVIS palette",
        )
    table = np.array([lookup[int(code)] for code in unique], dtype=np.uint8)
    return table[np.searchsorted(unique, codes)]


def write_label_png(path: str | os.PathLike, labels: np.ndarray, binary: bool = False) -> None:
    """Write ``uint8 [H, W]`` labels atomically: an indexed PNG with the DAVIS palette, or 0/255 if ``binary``."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"labels must be 2-D [H, W], got shape {labels.shape}")
    if binary:
        image = Image.fromarray(np.where(labels != 0, 255, 0).astype(np.uint8))
    else:
        image = Image.fromarray(labels.astype(np.uint8))
        image.putpalette(DAVIS_PALETTE.reshape(-1).tolist())
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
