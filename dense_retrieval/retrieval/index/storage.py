"""Storage of a segment index: directory layout, SQLite schema and connections, FAISS files, locks.

Used by :class:`~.segment_index.SegmentIndex`; nothing here is specific to one index instance.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import faiss

from ...data.atomic import atomic_path
from ...errors import DataFormatError, InputError
from ...records import RunRecord, check_index_meta
from ..segments import Segment

FORMAT_VERSION = 2
"""2: the recorded configuration is a flat run record (dense_retrieval.records). 1: the same with backbone
and features nested under "features"; read and upgraded in memory."""
DB_NAME = "segments.sqlite"
FAISS_DIR = "faiss"
DEFAULT_FACTORY = "Flat"

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
# the images already indexed, by path and content (sha256 of the file): `index add` skips them
IMAGES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS images (path TEXT NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (path, sha256))"
)
ROW_COLUMNS = "id, image, method, height, width, rle, bbox_x, bbox_y, bbox_w, bbox_h, area, label"


def index_config(features: dict, pooling: str, dim: int) -> dict:
    """The run record an index keeps: the feature extractor's ``describe()``, pooling, dimension."""
    return RunRecord.of(features, pooling=pooling, dim=int(dim)).as_dict()


def upgrade_meta(meta: dict) -> dict:
    """Meta of an index written by an older format, in the current format's shape (in memory only)."""
    if meta.get("format") == 1 and isinstance(meta.get("config"), dict):
        old = meta["config"]
        nested = old.get("features") if isinstance(old.get("features"), dict) else {}
        config = {"backbone": nested.get("backbone"), "features": nested.get("features")}
        config.update({key: value for key, value in old.items() if key != "features"})
        return {**meta, "format": FORMAT_VERSION, "config": config}
    return meta


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
    """A connection to an index database. Read-only connections also work on read-only folders and media:
    where SQLite cannot create its shared-memory file there, the database is opened as immutable (no
    process can be writing into a folder that nobody may write)."""
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        if not os.access(path.parent, os.W_OK):
            db.close()
            db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, timeout=30, isolation_level=None)
    else:
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    if readonly:
        db.execute("PRAGMA query_only=1")
    return db


def acquire_writer_lock(path: Path) -> Any:
    try:
        handle = open(path / ".writer.lock", "a+")  # noqa: SIM115 - held for the index's lifetime
    except PermissionError:
        raise InputError(f"index {path} is read-only", hint="copy it somewhere writable to add to it") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InputError(
            f"index {path} is being written by another process", hint="wait for it, or open the index read-only"
        ) from None
    return handle


def count_rows(db: sqlite3.Connection, ntotal: int) -> tuple[dict, int]:
    """Segments and images per proposal method, and distinct images, of the first ``ntotal`` rows (rows beyond
    the loaded version, committed since by another process, are not counted)."""
    rows = db.execute(
        "SELECT method, COUNT(*), COUNT(DISTINCT image) FROM segments WHERE id < ? GROUP BY method", (ntotal,)
    )
    methods = {method: {"segments": n, "images": images} for method, n, images in rows}
    images = db.execute("SELECT COUNT(DISTINCT image) FROM segments WHERE id < ?", (ntotal,)).fetchone()[0]
    return methods, images


def check_factory(index: faiss.Index, factory: str) -> None:
    """Refuse factories FAISS accepts but cannot use (an IVF without lists)."""
    try:
        lists = faiss.extract_index_ivf(index).nlist
    except RuntimeError:  # not an IVF index
        return
    if lists < 1:
        raise InputError(f"FAISS factory {factory!r} has no inverted lists", hint="e.g. 'IVF256,Flat'")


def image_indexed(db: sqlite3.Connection, image: str, sha256: str, ntotal: int) -> bool:
    """Whether the index holds ``image`` with content ``sha256``; indexes made before contents were recorded
    (no ``images`` row for the path) count an image by its path alone."""
    known = db.execute("SELECT sha256 FROM images WHERE path = ?", (image,)).fetchall()
    if known:
        return any(row[0] == sha256 for row in known)
    query = "SELECT 1 FROM segments WHERE image = ? AND id < ? LIMIT 1"
    return db.execute(query, (image, ntotal)).fetchone() is not None


def gpu_copy(index: faiss.Index) -> faiss.Index:
    """A GPU copy of ``index`` when faiss has GPUs and the factory supports it, else ``index`` itself."""
    if not hasattr(faiss, "index_cpu_to_all_gpus") or faiss.get_num_gpus() == 0:
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError:  # e.g. HNSW has no GPU version
        return index


def insert_image(db: sqlite3.Connection, image: str, sha256: str) -> None:
    """Record an indexed image in the open write transaction (started here if none is)."""
    if not db.in_transaction:
        db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT OR IGNORE INTO images (path, sha256) VALUES (?, ?)", (image, sha256))


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


def faiss_message(error: Exception) -> str:
    """The useful tail of a FAISS C++ error ("Error in ... at file:line: Error: '...' failed: reason")."""
    text = " ".join(str(error).split())
    for marker in ("failed: ", "Error: "):
        if marker in text:
            return text.rsplit(marker, 1)[1]
    return text


def read_committed(db: sqlite3.Connection, path: Path) -> tuple[dict, faiss.Index]:
    """The committed meta of the index at ``path`` and the FAISS index it points to, checked against each other.

    The meta and the row count are read in one transaction (one consistent snapshot); if a writer commits
    and prunes the FAISS file between that snapshot and the read, the snapshot is taken again.

    Raises:
        DataFormatError: a corrupted database or FAISS file, an unknown format, or a FAISS file whose size
            or dimension disagrees with the database.
    """
    for _attempt in range(5):
        try:
            meta, rows = _snapshot(db)
        except sqlite3.DatabaseError as error:
            raise DataFormatError(f"corrupted index database {path / DB_NAME}: {error}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise DataFormatError(f"index {path} has format {meta.get('format')!r}, expected {FORMAT_VERSION}")
        meta = check_index_meta(meta, f"index {path}")
        file = path / FAISS_DIR / str(meta.get("faiss_file", ""))
        try:
            index = faiss.read_index(str(file))
            break
        except RuntimeError as error:
            if file.is_file():
                raise DataFormatError(f"corrupted FAISS file {file}: {faiss_message(error)}") from None
        time.sleep(0.05)  # a writer committed and pruned this file after our snapshot: read again
    else:
        raise DataFormatError(f"index {path} points to a missing FAISS file {file.name}")
    if index.d != meta["dim"] or index.ntotal != meta["ntotal"]:
        raise DataFormatError(
            f"FAISS file {file} holds {index.ntotal} vectors of dim {index.d}; "
            f"the database expects {meta['ntotal']} of dim {meta['dim']}"
        )
    if rows != index.ntotal:
        raise DataFormatError(f"index {path}: {rows} metadata rows for {index.ntotal} vectors")
    return meta, index


def _snapshot(db: sqlite3.Connection) -> tuple[dict, int]:
    """The committed meta (upgraded to the current format) and the row count, in one transaction."""
    own = not db.in_transaction
    if own:
        db.execute("BEGIN")
    try:
        try:
            values = {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM meta")}
        except (json.JSONDecodeError, TypeError, RecursionError):
            raise DataFormatError("the index metadata holds a value that is not JSON") from None
        meta = upgrade_meta(values)
        rows = db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
    finally:
        if own:
            db.execute("COMMIT")
    return meta, rows
