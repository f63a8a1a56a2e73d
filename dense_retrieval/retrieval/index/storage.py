"""Storage of a segment index: directory layout, SQLite schema and connections, FAISS files, locks.

Used by :class:`~.segment_index.SegmentIndex`; nothing here is specific to one index instance.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss

from ...data.atomic import atomic_path
from ...errors import DataFormatError, InputError, OutputExistsError
from ...records import RunRecord, check_index_meta
from ..segments import Segment
from .ondisk import DATA_SUFFIX, READ_FLAGS, data_file, data_file_named_relative, faiss_output_logged, merge_to_disk

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


FAISS_FILE_RE = re.compile(r"index-(\d{6,})\.(faiss|ivfdata)")
TRAINED_NAME = "trained.faiss"
"""The trained, empty FAISS index of an index built from shards (faiss/trained.faiss): what new vectors are
encoded with (adds to on-disk indexes) and what tells whether two indexes can be merged."""


def faiss_name(version: int) -> str:
    return f"index-{version:06d}.faiss"


def data_name(version: int) -> str:
    """The inverted-list data file of version ``version`` of an on-disk index."""
    return f"index-{version:06d}{DATA_SUFFIX}"


def new_meta(config: dict, factory: str, dim: int, faiss_file: str, version: int = 0, ntotal: int = 0, **extra) -> dict:
    """The meta table of a new index (``extra``: on_disk, search_params, build, choice, recall ...)."""
    return {
        "format": FORMAT_VERSION,
        "config": config,
        "factory": factory,
        "dim": int(dim),
        "version": version,
        "faiss_file": faiss_file,
        "ntotal": int(ntotal),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def prune_versions(folder: Path, version: int) -> None:
    """Delete FAISS files in ``folder`` other than those of ``version`` and ``version - 1`` (old ones, orphans)."""
    keep = {name(v) for name in (faiss_name, data_name) for v in (version, version - 1)}
    for file in folder.iterdir():
        if file.name not in keep and (FAISS_FILE_RE.fullmatch(file.name) or file.name.endswith(".tmp.faiss")):
            file.unlink(missing_ok=True)


def create_database(path: Path, meta: dict) -> sqlite3.Connection:
    """A new index database at ``path`` with the schema and ``meta``, committed; returns the connection."""
    db = connect(path, readonly=False)
    db.executescript("BEGIN;" + SCHEMA + IMAGES_SCHEMA + ";")
    db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
    db.execute("COMMIT")
    return db


def update_meta(db: sqlite3.Connection, updates: dict) -> None:
    """Set meta keys (inserting new ones) in the current transaction, or in one of its own."""
    own = not db.in_transaction
    if own:
        db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in updates.items()])
    if own:
        db.execute("COMMIT")


def copy_rows(db: sqlite3.Connection, source: Path, offset: int, limit: int | None = None) -> int:
    """Append the segments rows of the database ``source`` with ids shifted by ``offset``, and its images rows;
    returns the count of segment rows.

    Args:
        limit: copy only rows with ``id < limit`` (the committed rows of an index being written meanwhile).
    """
    db.execute("ATTACH DATABASE ? AS source", (database_uri(source, readonly=True),))  # a source may be read-only
    try:
        db.execute("BEGIN")
        where = "" if limit is None else f" WHERE id < {int(limit)}"
        cursor = db.execute(
            f"INSERT INTO segments ({ROW_COLUMNS}) SELECT id + ?, {ROW_COLUMNS.split(', ', 1)[1]} "
            f"FROM source.segments{where} ORDER BY id",
            (int(offset),),
        )
        count = cursor.rowcount
        tables = {row[0] for row in db.execute("SELECT name FROM source.sqlite_master WHERE type = 'table'")}
        if "images" in tables:  # the images indexed (path, content), so that `index add` skips them
            db.execute(IMAGES_SCHEMA)
            db.execute("INSERT OR IGNORE INTO images (path, sha256) SELECT path, sha256 FROM source.images")
        db.execute("COMMIT")
        return count
    finally:
        db.execute("DETACH DATABASE source")


def write_ondisk(trained: Path, parts: list[faiss.Index | None], header: Path) -> None:
    """An on-disk index at ``header`` (+ its data file) holding the lists of ``parts`` (None: skipped), in order.

    Args:
        trained: the trained, empty index every part was encoded with (ids in the parts are kept).
    """
    index = faiss.read_index(str(trained))
    merge_to_disk(index, [part for part in parts if part is not None], header)
    write_faiss(index, header)


def faiss_bytes(header: Path) -> int:
    """Size of a FAISS file plus its inverted-list data file, if any."""
    data = data_file(header)
    return header.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def read_faiss(file: Path, on_disk: bool) -> faiss.Index:
    """Read a FAISS file; an on-disk one read-only, its lists mapped from the data file beside it."""
    if not on_disk:
        return faiss.read_index(str(file))
    with faiss_output_logged():
        return faiss.read_index(str(file), READ_FLAGS)


def write_faiss(index: faiss.Index, path: Path) -> None:
    """Write ``index`` to ``path`` atomically and durably (fsync before the rename); on-disk lists name their
    data file relative to the header (``data_file_named_relative``)."""
    with atomic_path(path) as tmp, data_file_named_relative(index):
        faiss.write_index(index, str(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())


def database_uri(path: Path, readonly: bool) -> str:
    """The SQLite URI of an index database; read-only ones in a folder nobody may write are opened immutable."""
    uri = f"file:{urllib.parse.quote(os.fspath(Path(path).absolute()))}"
    if not readonly:
        return uri
    return uri + ("?mode=ro" if os.access(Path(path).absolute().parent, os.W_OK) else "?mode=ro&immutable=1")


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection to an index database. Read-only connections also work on read-only folders and media:
    where SQLite cannot create its shared-memory file there, the database is opened as immutable (no
    process can be writing into a folder that nobody may write)."""
    if readonly:
        db = sqlite3.connect(database_uri(path, readonly=True), uri=True, timeout=30, isolation_level=None)
    else:
        db = sqlite3.connect(database_uri(path, readonly=False), uri=True, timeout=30, isolation_level=None)
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


@contextlib.contextmanager
def replacing_index(out: Path, overwrite: bool, hold: bool = True) -> Iterator[None]:
    """Guard the folder a build or merge will put a new index at, for the whole of the run.

    A folder that is not empty is refused unless ``overwrite``, and even then unless it holds an index
    (``--overwrite`` replaces only an index); that index's writer lock is held (``hold``) until the block
    ends, so an ``index add`` or another build over it is refused meanwhile instead of being lost.

    Raises:
        OutputExistsError: ``out`` is not empty and ``overwrite`` is not given.
        InputError: ``out`` is not an index, or is being written by another process.
    """
    lock = None
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out} exists and is not empty", hint="pass --overwrite, or use `index add`")
        if not (out / DB_NAME).is_file():
            raise InputError(
                f"{out} is not a segment index; --overwrite replaces only an index",
                hint="choose another --out, or empty that folder yourself",
            )
        if hold:
            lock = acquire_writer_lock(out)
    try:
        yield
    finally:
        if lock is not None:
            lock.close()


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


def insert_image(db: sqlite3.Connection, image: str, sha256: str) -> None:
    """Record an indexed image in the open write transaction (started here if none is)."""
    if not db.in_transaction:
        db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT OR IGNORE INTO images (path, sha256) VALUES (?, ?)", (image, sha256))


def segments_by_id(db: sqlite3.Connection, ids: list[int]) -> dict[int, Segment]:
    """The stored segments of ``ids`` (those that have a row), by id; queried 500 ids at a time."""
    found: dict[int, Segment] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = f"SELECT {ROW_COLUMNS} FROM segments WHERE id IN ({', '.join('?' * len(chunk))})"
        for row in db.execute(query, chunk):
            found[row[0]] = segment_from_row(row)
    return found


def segments_of_image(db: sqlite3.Connection, image: str, ntotal: int) -> list[Segment]:
    """The stored segments of ``image`` among the first ``ntotal`` rows, in id order."""
    query = f"SELECT {ROW_COLUMNS} FROM segments WHERE image = ? AND id < ? ORDER BY id"
    return [segment_from_row(row) for row in db.execute(query, (image, ntotal))]


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
            index = read_faiss(file, bool(meta.get("on_disk")))
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
