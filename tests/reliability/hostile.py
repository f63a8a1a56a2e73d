"""Builders of malformed and hostile inputs: broken images, PNG headers that lie, COCO files,
checkpoints, tampered run records and index databases. Real files, written the way a broken tool or
an attacker would write them."""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


# ------------------------------------------------------------------------------------------ images
def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, bit_depth: int = 8, colour: int = 0, rows: int = 1) -> bytes:
    """A small, valid-looking PNG whose header declares ``width`` x ``height`` (only ``rows`` rows of data).

    A decoder that trusts the header allocates the declared size before it finds the data short.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = b"\x00" + b"\x00" * ((width * channels * bit_depth + 7) // 8)
    data = zlib.compress(row * rows, 9)
    chunks = png_chunk(b"IHDR", header)
    if colour == 3:
        chunks += png_chunk(b"PLTE", bytes(range(3)) * 1)
    return b"\x89PNG\r\n\x1a\n" + chunks + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def truncated_copy(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = Path(source).read_bytes()
    target.write_bytes(data[: max(1, int(len(data) * fraction))])
    return target


def flipped_copy(source: Path, target: Path, every: int = 97) -> Path:
    """A copy with every ``every``-th byte after the first 64 inverted (a corrupt file of the right size)."""
    data = bytearray(Path(source).read_bytes())
    for index in range(64, len(data), every):
        data[index] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def write_gray16(path: Path, values: np.ndarray) -> Path:
    """A 16-bit grayscale PNG (mode I;16) of uint16 ``values``."""
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path


def write_rgb(path: Path, height: int, width: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def write_labels(path: Path, labels: np.ndarray, mode: str = "P") -> Path:
    image = Image.fromarray(labels.astype(np.uint8))
    if mode == "P":
        image = image.convert("P")
    image.save(path)
    return path


# ------------------------------------------------------------------------------------------ COCO
def coco_document(images: list[Path], segmentations: list, **image_overrides) -> dict:
    """A COCO document listing ``images`` (real sizes) with one annotation per segmentation on the first."""
    entries = []
    for number, path in enumerate(images):
        with Image.open(path) as image:
            width, height = image.size
        entries.append({"id": number, "file_name": path.name, "height": height, "width": width, **image_overrides})
    annotations = [
        {"id": number + 1, "image_id": 0, "category_id": 1, "segmentation": segmentation}
        for number, segmentation in enumerate(segmentations)
    ]
    return {"images": entries, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))  # allow_nan: NaN and Infinity are written as JSON extensions
    return path


# ------------------------------------------------------------------------------------------ checkpoints
def mobilenet_state(fill: float | None = None, seed: int = 0) -> dict:
    import torch
    import torchvision

    torch.manual_seed(seed)
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    if fill is not None:
        for value in state.values():
            if value.is_floating_point():
                value.fill_(fill)
    return state


def save_checkpoint(path: Path, payload: object) -> Path:
    import torch

    torch.save(payload, path)
    return path


def one_nan_tensor(state: dict, key: str | None = None) -> dict:
    """``state`` with one weight holding a single NaN (the hardest case to notice)."""
    state = {k: v.clone() for k, v in state.items()}
    key = key or next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key].view(-1)[0] = float("nan")
    return state


# ------------------------------------------------------------------------------------------ records
def tamper_json(path: Path, change) -> Path:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def set_index_meta(index: Path, key: str, value_json: str) -> None:
    """Overwrite one value of an index's ``meta`` table (as stored: JSON text)."""
    with sqlite3.connect(index / "segments.sqlite") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (value_json, key))
    db.close()


def index_sql(index: Path, statement: str) -> None:
    with sqlite3.connect(index / "segments.sqlite") as db:
        db.execute(statement)
    db.close()
