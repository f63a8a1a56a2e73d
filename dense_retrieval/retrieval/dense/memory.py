"""A patch memory on disk: a FAISS index of patch features beside a store of their soft labels.

Layout of a memory folder (written by :mod:`.memory_build`, complete or absent: it is swapped in whole)::

    MEMORY/
      memory.json          what made it (backbone, features, protocol, dataset), factory, size, recall, build
      faiss/index.faiss    the FAISS index of the L2-normalised patch features (inner product), ids 0..N-1
      faiss/index.ivfdata  its inverted lists when built on disk (memory-mapped, read-only)
      labels.npy           float16 or uint8 [N, C]: the soft label of patch i (uint8: value / 255)
      origins.npy          int32 [N, 3]: (memory image, pass, patch cell in raster order) of patch i
      images.json          the memory images (paths) and the crop each pass took of each (top, left, h, w)

The label store and the origins are ``.npy`` files opened memory-mapped: a search reads the rows of the
neighbours it found, never the whole store, so a memory larger than RAM is readable (an on-disk IVF index
and its labels). Everything read back is checked against ``memory.json`` before it names a size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ...errors import DataFormatError, InputError
from ..index.gpu import on_gpus
from ..index.storage import faiss_bytes, faiss_message, read_faiss

MEMORY_FORMAT = 1
RECORD = "memory.json"
FAISS_FILE = Path("faiss") / "index.faiss"
LABELS = "labels.npy"
ORIGINS = "origins.npy"
IMAGES = "images.json"
_REQUIRED = {
    "format": int,
    "record": dict,
    "factory": str,
    "ntotal": int,
    "dim": int,
    "classes": int,
    "label_dtype": str,
    "on_disk": bool,
    "input_size": int,
    "grid": list,
}


def is_memory(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a patch memory (its ``memory.json``)."""
    return (Path(path) / RECORD).is_file()


def read_memory_record(path: Path) -> dict[str, Any]:
    """``memory.json`` of the memory at ``path``, checked against its schema.

    Raises:
        InputError: no memory there. DataFormatError: a key missing or of the wrong type, named.
    """
    file = path / RECORD
    if not file.is_file():
        raise InputError(f"no patch memory at {path} (missing {RECORD})", hint="build one with `retrieval eval-dense`")
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise DataFormatError(f"unreadable {file}: {error}", hint="rebuild the memory") from None
    if not isinstance(document, dict):
        raise DataFormatError(f"{file} is not a JSON object", hint="rebuild the memory")
    for key, kind in _REQUIRED.items():
        value = document.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise DataFormatError(f"{file}: {key!r} is {value!r}, not a {kind.__name__}", hint="rebuild the memory")
    if document["format"] != MEMORY_FORMAT:
        raise DataFormatError(f"{file} has format {document['format']}, this toolkit reads {MEMORY_FORMAT}")
    if min(document["ntotal"], document["dim"], document["classes"], document["input_size"]) < 1:
        raise DataFormatError(f"{file}: sizes must be positive", hint="rebuild the memory")
    if document["label_dtype"] not in ("float16", "uint8"):
        raise DataFormatError(f"{file}: unknown label dtype {document['label_dtype']!r}")
    return document


class PatchMemory:
    """A patch memory opened for search (read-only). Open with :meth:`open`; close when done.

    Attributes:
        path: the memory folder. record: its ``memory.json``. ntotal, dim, classes: its sizes.
    """

    def __init__(self, path: Path, record: dict, index: faiss.Index, labels: np.ndarray, origins: np.ndarray):
        self.path = path
        self.record = record
        self.ntotal, self.dim, self.classes = record["ntotal"], record["dim"], record["classes"]
        self._index = index
        self._searcher: faiss.Index | None = None
        self._labels = labels
        self._origins = origins
        params = record.get("search_params")
        if params:
            self.set_search_params(params)

    @classmethod
    def open(cls, path: str | os.PathLike) -> PatchMemory:
        """Open the memory at ``path``: the FAISS index (lists memory-mapped when on disk), labels mapped.

        Raises:
            InputError: no memory there. DataFormatError: its files do not agree with ``memory.json``.
        """
        path = Path(path)
        record = read_memory_record(path)
        header = path / FAISS_FILE
        if not header.is_file():
            raise DataFormatError(f"patch memory {path} lacks {FAISS_FILE}", hint="rebuild the memory")
        try:
            index = read_faiss(header, record["on_disk"])
        except RuntimeError as error:
            raise DataFormatError(f"unreadable FAISS index {header}: {faiss_message(error)}") from None
        labels = _mapped(path / LABELS, (record["ntotal"], record["classes"]), record["label_dtype"])
        origins = _mapped(path / ORIGINS, (record["ntotal"], 3), "int32")
        if index.ntotal != record["ntotal"] or index.d != record["dim"]:
            raise DataFormatError(
                f"patch memory {path}: the FAISS index holds {index.ntotal} x {index.d}, {RECORD} says "
                f"{record['ntotal']} x {record['dim']}",
                hint="rebuild the memory",
            )
        return cls(path, record, index, labels, origins)

    def close(self) -> None:
        self._index = self._searcher = None
        self._labels = self._origins = None

    def __enter__(self) -> PatchMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def factory(self) -> str:
        return self.record["factory"]

    def index_bytes(self) -> int:
        """Bytes of the FAISS files (header plus inverted-list data when on disk)."""
        return faiss_bytes(self.path / FAISS_FILE)

    def label_bytes(self) -> int:
        return (self.path / LABELS).stat().st_size + (self.path / ORIGINS).stat().st_size

    def set_search_params(self, params: str) -> None:
        """FAISS search parameters for the following searches, e.g. ``"nprobe=64"``."""
        try:
            faiss.ParameterSpace().set_index_parameters(self._index, params)
        except RuntimeError as error:
            raise InputError(f"bad search parameters {params!r}: {faiss_message(error)}") from None
        self._searcher = None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Inner products float32 [Q, k] and ids int64 [Q, k] of the ``k`` nearest memory patches.

        Queries need not be normalised (the memory is: the ranking is the cosine ranking). Search runs
        sharded over every visible GPU when FAISS has them (:func:`~..index.gpu.on_gpus`).
        """
        if self._searcher is None:
            self._searcher = on_gpus(self._index)
        k = min(k, self.ntotal)
        return self._searcher.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def labels_of(self, ids: np.ndarray) -> np.ndarray:
        """float32 [*ids.shape, C]: the soft labels of memory patches ``ids`` (read from the mapped store)."""
        flat = np.asarray(ids, dtype=np.int64).reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= self.ntotal):
            raise InputError(f"memory ids must lie in 0..{self.ntotal - 1}", hint="the search found fewer neighbours")
        values = self._labels[flat].astype(np.float32)  # fancy indexing reads only these rows of the map
        if self.record["label_dtype"] == "uint8":
            values /= 255.0
        return values.reshape(*np.shape(ids), self.classes)

    def origins_of(self, ids: np.ndarray) -> np.ndarray:
        """int32 [len(ids), 3]: (memory image, pass, patch cell) of memory patches ``ids``."""
        return np.asarray(self._origins[np.asarray(ids, dtype=np.int64)])

    def images(self) -> dict:
        """``images.json``: the memory images (``"images"``) and each pass's crop of each (``"crops"``)."""
        return json.loads((self.path / IMAGES).read_text(encoding="utf-8"))

    def patch_boxes(self, ids: np.ndarray) -> list[tuple[str, tuple[float, float, float, float]]]:
        """Where memory patches ``ids`` come from: (image path, (top, left, bottom, right) in its pixels).

        A patch is a cell of the grid of one pass's input; that input showed a crop of the image (the whole
        image for the validation resize), so the cell maps back to a box of the original image.
        """
        listing = self.images()
        rows, cols = self.record["grid"]
        size = self.record["input_size"]
        boxes = []
        for image, epoch, cell in self.origins_of(np.asarray(ids).reshape(-1)).tolist():
            top, left, height, width = listing["crops"][str(image)][str(epoch)]
            row, col = divmod(cell, cols)
            scale_y, scale_x = height / size, width / size
            step = size / rows, size / cols
            box = (
                top + row * step[0] * scale_y,
                left + col * step[1] * scale_x,
                top + (row + 1) * step[0] * scale_y,
                left + (col + 1) * step[1] * scale_x,
            )
            boxes.append((listing["images"][image], box))
        return boxes


def _mapped(file: Path, shape: tuple[int, int], dtype: str) -> np.ndarray:
    """A ``.npy`` array memory-mapped read-only, checked to be ``shape`` of ``dtype``."""
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataFormatError(f"unreadable {file}: {error}", hint="rebuild the memory") from None
    if array.shape != shape or array.dtype != np.dtype(dtype):
        raise DataFormatError(
            f"{file} holds {array.dtype} {array.shape}, expected {dtype} {shape}", hint="rebuild the memory"
        )
    return array
