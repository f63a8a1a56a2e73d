"""Segments as stored in an index: image, proposal method, mask as COCO RLE, bbox, area, label."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import DataFormatError, InputError


@dataclass(frozen=True)
class SegmentRecord:
    """A segment to add to an index: give ``mask`` (bool [H, W]) or a COCO ``rle`` (``{"size", "counts"}``)."""

    image: str
    method: str
    mask: np.ndarray | None = None
    rle: dict | None = None
    label: int | None = None


@dataclass(frozen=True)
class Segment:
    """One stored segment. ``rle`` is COCO compressed RLE (``{"size": [H, W], "counts": str}``)."""

    id: int
    image: str
    method: str
    rle: dict
    bbox: tuple[float, float, float, float]  # x, y, width, height (COCO)
    area: int
    label: int | None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the stored mask."""
        return int(self.rle["size"][0]), int(self.rle["size"][1])

    def mask(self) -> np.ndarray:
        """The segment's mask, bool [H, W]."""
        return decode_rle(self.rle)


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a bool [H, W] mask, with ``counts`` as an ASCII string."""
    if mask.ndim != 2:
        raise InputError(f"a segment mask must be [H, W], got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict, where: str = "RLE mask") -> np.ndarray:
    """bool [H, W] from a COCO RLE: compressed (``counts`` str or bytes) or plain (``counts`` a list).

    The RLE is checked first (:func:`check_rle`): pycocotools writes past its buffer when the runs do
    not add up to H x W, so nothing unchecked reaches it.

    Raises:
        DataFormatError: a size or runs that do not describe an H x W mask.
    """
    coco = check_rle(rle, where)
    with warnings.catch_warnings():  # pycocotools' decode trips numpy 2's __array__(copy=) deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = mask_utils.decode(coco)
    return decoded.astype(bool)


def check_rle(rle: object, where: str = "RLE mask") -> dict:
    """A COCO RLE checked and in pycocotools' compressed form ``{"size": [H, W], "counts": bytes}``.

    Checks: a mapping with ``size`` = two integers >= 0 within the pixel budget and ``counts`` either a
    list of integers >= 0 or COCO's compressed string; the runs are non-negative and add up to H x W.

    Raises:
        DataFormatError: anything else, naming ``where``.
    """
    from ..data.images import pixel_budget

    def bad(reason: str) -> DataFormatError:
        return DataFormatError(f"{where}: {reason}", hint="the mask is damaged or not COCO RLE")

    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise bad("an RLE needs 'size' and 'counts'")
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(v) and v >= 0 for v in size):
        raise bad(f"RLE size {size!r} is not two integers >= 0")
    height, width = int(size[0]), int(size[1])
    if height * width > pixel_budget():
        raise bad(f"RLE size {height}x{width} is over the pixel budget")
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(_is_int(v) and 0 <= v <= height * width for v in counts):
            raise bad("RLE counts must be integers >= 0")
        runs = [int(v) for v in counts]
        compressed = None
    elif isinstance(counts, (str, bytes)):
        compressed = counts.encode("ascii", "replace") if isinstance(counts, str) else bytes(counts)
        runs = _runs_of(compressed)
        if runs is None:
            raise bad("RLE counts are not COCO's compressed encoding")
    else:
        raise bad(f"RLE counts of type {type(counts).__name__}")
    if any(v < 0 for v in runs) or sum(runs) != height * width:
        raise bad(f"RLE runs add up to {sum(runs)} pixels, not {height}x{width} = {height * width}")
    if compressed is None:
        compressed = mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width)["counts"]
    return {"size": [height, width], "counts": compressed}


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _runs_of(counts: bytes) -> list[int] | None:
    """COCO's compressed counts (6-bit groups from '0', delta-coded from the third run) as run lengths."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                return None  # the string ends inside a number
            code = counts[position] - 48
            if not 0 <= code < 64:
                return None
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
            if shift > 60:
                return None
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def segment_row(segment_id: int, record: SegmentRecord) -> tuple:
    """The SQLite row of ``record``: (id, image, method, height, width, rle, x, y, w, h, area, label)."""
    rle = record.rle
    if rle is None:
        if record.mask is None:
            raise InputError(f"segment of {record.image} has neither a mask nor an RLE")
        rle = encode_rle(record.mask)
    coco = {"size": list(rle["size"]), "counts": _bytes(rle["counts"])}
    x, y, w, h = (float(v) for v in mask_utils.toBbox(coco))
    area = int(mask_utils.area(coco))
    label = None if record.label is None else int(record.label)
    counts = coco["counts"].decode("ascii")
    return (
        segment_id,
        str(record.image),
        record.method,
        int(rle["size"][0]),
        int(rle["size"][1]),
        counts,
        x,
        y,
        w,
        h,
        area,
        label,
    )


def _bytes(counts: str | bytes) -> bytes:
    return counts.encode("ascii") if isinstance(counts, str) else counts
