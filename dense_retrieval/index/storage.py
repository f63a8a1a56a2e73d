"""Storage of a segment index: directory layout, SQLite schema and connections, FAISS files, locks.

Used by :class:`~.segment_index.SegmentIndex`; nothing here is specific to one index instance.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import faiss

from ..data.atomic import atomic_path
from ..errors import InputError
from ..segments import Segment

FORMAT_VERSION = 1
DB_NAME = "segments.sqlite"
FAISS_DIR = "faiss"
DEFAULT_FACTORY = "Flat"
# Keys of a feature description that do not change the vectors (batching, device placement).
VOLATILE_KEYS = frozenset({"batch_size", "device", "num_workers", "amp", "autocast", "progress"})

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    image TEXT NOT NULL,
    method TEXT NOT NULL,
    height INTEGER NOT NULL,
    width INTEGER NOT NULL,
    rle TEXT NOT NULL,
    bbox_x REAL NOT NULL, bbox_y REAL NOT NULL, bbox_w REAL NOT NULL, bbox_h REAL NOT NULL,
    area INTEGER NOT NULL,
    label INTEGER
);
CREATE INDEX segments_image ON segments (image);
"""
ROW_COLUMNS = "id, image, method, height, width, rle, bbox_x, bbox_y, bbox_w, bbox_h, area, label"


def index_config(features: dict, pooling: str, dim: int) -> dict:
    """The configuration an index records: the feature extractor's ``describe()``, pooling, dimension."""
    return {"features": features, "pooling": pooling, "dim": int(dim)}


FAISS_FILE_RE = re.compile(r"index-(\d{6,})\.faiss")


def faiss_name(version: int) -> str:
    return f"index-{version:06d}.faiss"


def write_faiss(index: faiss.Index, path: Path) -> None:
    """Write ``index`` to ``path`` atomically and durably (fsync before the rename)."""
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    else:
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    if readonly:
        db.execute("PRAGMA query_only=1")
    return db


def acquire_writer_lock(path: Path) -> Any:
    handle = open(path / ".writer.lock", "a+")  # noqa: SIM115 - held for the index's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(
            f"index {path} is being written by another process", hint="wait for it, or open the index read-only"
        ) from None
    return handle


def segment_from_row(row: tuple) -> Segment:
    segment_id, image, method, height, width, counts, x, y, w, h, area, label = row
    return Segment(
        id=segment_id,
        image=image,
        method=method,
        rle={"size": [height, width], "counts": counts},
        bbox=(x, y, w, h),
        area=area,
        label=label,
    )


def first_difference(stored: Any, given: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first key (dotted path) where two configs differ, ignoring :data:`VOLATILE_KEYS`."""
    if isinstance(stored, dict) and isinstance(given, dict):
        for key in sorted(set(stored) | set(given)):
            if key in VOLATILE_KEYS:
                continue
            found = first_difference(stored.get(key), given.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    stored, given = json.loads(json.dumps(stored)), json.loads(json.dumps(given))  # tuples vs lists
    return None if stored == given else (prefix.rstrip("."), stored, given)


def faiss_message(error: Exception) -> str:
    """The useful tail of a FAISS C++ error ("Error in ... at file:line: Error: '...' failed: reason")."""
    text = " ".join(str(error).split())
    for marker in ("failed: ", "Error: "):
        if marker in text:
            return text.rsplit(marker, 1)[1]
    return text
