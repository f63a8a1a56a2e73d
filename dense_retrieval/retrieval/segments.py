"""Segments as stored in an index: image, proposal method, mask as COCO RLE, bbox, area, label."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import InputError


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


def decode_rle(rle: dict) -> np.ndarray:
    """bool [H, W] from a COCO compressed RLE whose ``counts`` is a str or bytes."""
    with warnings.catch_warnings():  # pycocotools' decode trips numpy 2's __array__(copy=) deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = mask_utils.decode({"size": list(rle["size"]), "counts": _bytes(rle["counts"])})
    return decoded.astype(bool)


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
