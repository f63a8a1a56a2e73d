"""SegmentIndex: a FAISS index of pooled segment vectors plus a SQLite table of what they are.

Layout of an index directory::

    INDEX/
      segments.sqlite        metadata (WAL mode): table ``meta`` (config, factory, version, pointer to
                             the current FAISS file) and table ``segments`` (one row per vector)
      faiss/index-000007.faiss   the FAISS index of version 7 (the previous version is kept too)
      faiss/index-000007.ivfdata its inverted lists when built ``--on-disk`` (memory-mapped, read-only)
      faiss/trained.faiss        the trained, empty index the vectors were encoded with (built from shards)

Row ids are the FAISS ids ``0 .. ntotal - 1`` in the order vectors were added (no id map needed).
Commit protocol (docs/architecture.md, house rule 6): an add writes the whole FAISS index to a new
versioned file (temporary name, fsync, rename), then, in one SQLite transaction, inserts the rows and
moves the pointer. A process killed at any point leaves the previous version intact: an unreferenced
newer FAISS file is an orphan that the next writer deletes, and SQLite rolls back the uncommitted
transaction. Readers open the database read-only and see the last committed version (WAL: readers
never wait for the writer). One writer at a time (lock file).

The index records the run record of the features it holds (backbone, weights, layer, stride, resize, pooling,
dimension; :mod:`dense_retrieval.records`) and refuses vectors made with another one (ConfigMismatchError).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ...errors import ConfigMismatchError, DataFormatError, InputError
from ...interrupts import commit_section
from ...records import differences, value_at
from ..segments import Segment, SegmentRecord, segment_row
from .codec import new_index
from .gpu import on_gpus
from .storage import (
    DB_NAME,
    DEFAULT_FACTORY,
    FAISS_DIR,
    IMAGES_SCHEMA,
    ROW_COLUMNS,
    TRAINED_NAME,
    acquire_writer_lock,
    connect,
    count_rows,
    create_database,
    faiss_bytes,
    faiss_message,
    faiss_name,
    image_indexed,
    insert_image,
    new_meta,
    prune_versions,
    read_committed,
    segments_by_id,
    segments_of_image,
    write_faiss,
    write_ondisk,
)


class SegmentIndex:
    """A persistent FAISS + SQLite segment index. Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path: Path, db: sqlite3.Connection, readonly: bool, lock: Any | None):
        self.path = path
        self.readonly = readonly
        self._db = db
        self._lock = lock
        self._in_batch = False
        self._params: str | None = None
        self._pending: faiss.Index | None = None  # vectors added to an on-disk index, written at the commit
        self._load()

    # ----------------------------------------------------------------------------- life cycle
    @classmethod
    def create(cls, path: str | os.PathLike, config: dict, factory: str = DEFAULT_FACTORY) -> SegmentIndex:
        """Create an empty index directory at ``path`` (which must not hold an index yet).

        Args:
            path: the index directory.
            config: see :func:`index_config`; ``config["dim"]`` is the vector dimension.
            factory: a FAISS factory string (inner-product metric), e.g. ``"Flat"``, ``"IVF1024,Flat"``,
                ``"IVF4096,PQ64"``, ``"HNSW32"``.
        """
        path = Path(path)
        if (path / DB_NAME).exists():
            raise InputError(f"an index already exists at {path}", hint="use `index add`, or choose another --out")
        dim = int(config.get("dim", 0))
        if dim < 1:
            raise InputError(f"index config needs a positive 'dim', got {config.get('dim')!r}")
        faiss_index = new_index(dim, factory)
        (path / FAISS_DIR).mkdir(parents=True, exist_ok=True)
        lock = acquire_writer_lock(path)
        file_name = faiss_name(0)
        write_faiss(faiss_index, path / FAISS_DIR / file_name)
        meta = new_meta(config, factory, dim, file_name)
        return cls(path, create_database(path / DB_NAME, meta), readonly=False, lock=lock)

    @classmethod
    def open(cls, path: str | os.PathLike, readonly: bool = True) -> SegmentIndex:
        """Open an existing index. Read-only opens never wait for (or block) a writer."""
        path = Path(path)
        if not (path / DB_NAME).is_file():
            raise InputError(f"no segment index at {path} (missing {DB_NAME})", hint="build one with `index build`")
        if not readonly:
            cls.open(path, readonly=True).close()  # check the index before a writable open touches it
        lock = None if readonly else acquire_writer_lock(path)
        db = None
        try:
            db = connect(path / DB_NAME, readonly=readonly)
            if not readonly:
                db.execute(IMAGES_SCHEMA)
            return cls(path, db, readonly=readonly, lock=lock)
        except BaseException as error:
            if db is not None:
                db.close()
            if lock is not None:
                lock.close()
            if isinstance(error, sqlite3.DatabaseError):
                raise DataFormatError(f"corrupted index database {path / DB_NAME}: {error}") from None
            raise

    def close(self) -> None:
        """Close the database and release the writer lock (an open batch is rolled back)."""
        if self._db is not None:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> SegmentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- properties
    @property
    def ntotal(self) -> int:
        return int(self._faiss.ntotal) + (int(self._pending.ntotal) if self._pending is not None else 0)

    @property
    def trained(self) -> bool:  # Flat always; IVF and PQ after train()
        return bool(self._faiss.is_trained)

    @property
    def dim(self) -> int:
        return int(self._meta["dim"])

    @property
    def config(self) -> dict:
        return self._meta["config"]

    @property
    def factory(self) -> str:
        return self._meta["factory"]

    @property
    def version(self) -> int:
        return int(self._meta["version"])

    @property
    def on_disk(self) -> bool:
        """True when the inverted lists stay in a memory-mapped file (``index build --on-disk``)."""
        return bool(self._meta.get("on_disk"))

    @property
    def faiss_index(self) -> faiss.Index:
        """The loaded FAISS index of the committed version (on-disk lists stay mapped; do not modify)."""
        return self._faiss

    def index_bytes(self) -> int:
        """Size of the current FAISS files (header plus inverted-list data when on disk)."""
        return faiss_bytes(self.path / FAISS_DIR / self._meta["faiss_file"])

    def info(self) -> dict:
        """What the index holds and how it was made (for ``index info``)."""
        methods, images = count_rows(self._db, self.ntotal)
        stored = {key: self._meta.get(key) for key in ("factory", "dim", "version", "faiss_file")}
        return {
            "path": str(self.path),
            "segments": self.ntotal,
            "images": images,
            "proposals": methods,
            **stored,
            "trained": bool(self._faiss.is_trained),
            "on_disk": self.on_disk,
            "index_bytes": self.index_bytes(),
            **{key: self._meta.get(key) for key in ("search_params", "created", "config")},
            **{key: self._meta[key] for key in ("build", "choice", "recall") if key in self._meta},
        }

    def refresh(self) -> bool:
        """Reload if another process committed a newer version; True when something changed."""
        current = json.loads(self._db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
        if current == self.version:
            return False
        self._load()
        return True

    # ----------------------------------------------------------------------------- writing
    def check_config(self, config: dict) -> None:
        """Raise ConfigMismatchError when ``config`` would make vectors unlike the ones stored."""
        changed = differences(self.config, config)
        if changed:
            key = changed[0]
            stored, given = value_at(self.config, key), value_at(config, key)
            raise ConfigMismatchError(
                f"index {self.path} holds features made with {key}={stored!r}; these are made with {key}={given!r}",
                hint="use the index's backbone/checkpoint/layer/stride/pooling (see `index info`) or build a new index",
            )

    def train(self, vectors: np.ndarray) -> None:
        """Train an untrained factory (IVF, PQ) on ``vectors`` float32 [N, dim]; committed with the next add."""
        self._require_writable()
        vectors = self._check_vectors(vectors)
        if self._faiss.is_trained:
            return
        try:
            self._faiss.train(vectors)
        except RuntimeError as error:
            raise InputError(
                f"cannot train FAISS index {self.factory!r} on {len(vectors)} vectors: {faiss_message(error)}",
                hint="index more segments in the first build, or use a smaller factory such as 'Flat'",
            ) from None

    def add(self, vectors: np.ndarray, segments: Sequence[SegmentRecord], config: dict | None = None) -> np.ndarray:
        """Append segments; returns their ids int64 [N]. Commits now unless inside :meth:`batch`.

        Args:
            vectors: float32 [N, dim], L2-normalised pooled features.
            segments: N records (image, proposal method, mask or RLE, label).
            config: the configuration that made ``vectors``; checked against the index's.
        """
        self._require_writable()
        if config is not None:
            self.check_config(config)
        vectors = self._check_vectors(vectors)
        if len(vectors) != len(segments):
            raise InputError(f"{len(vectors)} vectors for {len(segments)} segments", hint="pass one vector per segment")
        if not self._faiss.is_trained:
            self.train(vectors)
        start = self.ntotal
        ids = np.arange(start, start + len(vectors), dtype=np.int64)
        rows = [segment_row(int(i), record) for i, record in zip(ids, segments, strict=True)]
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(f"INSERT INTO segments ({ROW_COLUMNS}) VALUES ({', '.join('?' * 12)})", rows)
            if self.on_disk:
                if self._pending is None:
                    self._pending = faiss.read_index(str(self.path / FAISS_DIR / TRAINED_NAME))
                self._pending.add_with_ids(vectors, ids)
            else:
                self._faiss.add(vectors)
            if not self._in_batch:
                self._commit()
        except BaseException:
            self._rollback()
            raise
        return ids

    @contextlib.contextmanager
    def batch(self, final: bool = False) -> Iterator[SegmentIndex]:
        """Group many :meth:`add` calls into one commit (one FAISS write, a commit section) at the end.

        Readers see the previous version until the block ends; an exception or a kill inside leaves it.
        """
        self._require_writable()
        self._in_batch = True
        try:
            yield self
            if self._db.in_transaction:
                with commit_section(final):
                    self._commit()
        except BaseException:
            self._rollback()
            raise
        finally:
            self._in_batch = False

    def indexed(self, image: str | os.PathLike, sha256: str) -> bool:
        """Whether ``image`` (absolute path as stored) with this content is already in the index."""
        return image_indexed(self._db, str(image), sha256, self.ntotal)

    def record_image(self, image: str | os.PathLike, sha256: str) -> None:
        """Remember ``image`` and its content hash; committed with the next commit."""
        self._require_writable()
        insert_image(self._db, str(image), sha256)

    # ----------------------------------------------------------------------------- reading
    def search(self, queries: np.ndarray, k: int = 10, params: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` inner-product neighbours.

        Args:
            queries: float32 [Q, dim] (L2-normalised: scores are cosine similarities).
            k: neighbours per query, at most the index's size; ids are -1 where fewer exist.
            params: FAISS search parameters, e.g. ``"nprobe=16"`` (IVF) or ``"efSearch=64"`` (HNSW).

        Returns:
            scores float32 [Q, k], ids int64 [Q, k].
        """
        queries = self._check_vectors(queries)
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        if params:
            self.set_search_params(params)
        k = max(1, min(k, self.ntotal))  # FAISS would allocate k results per query, whatever the index holds
        return self._searcher().search(queries, k)

    def set_search_params(self, params: str) -> None:
        """Set FAISS search parameters for the following searches, e.g. ``"nprobe=16"``, ``"efSearch=64"``."""
        try:
            faiss.ParameterSpace().set_index_parameters(self._faiss, params)
        except RuntimeError as error:
            raise InputError(
                f"bad search parameters {params!r} for factory {self.factory!r}: {faiss_message(error)}",
                hint="IVF factories take nprobe=N, HNSW takes efSearch=N",
            ) from None
        self._params = params
        self._gpu = None

    def reconstruct(self, segment_id: int) -> np.ndarray:
        """The stored vector of ``segment_id``, float32 [dim] (decoded, i.e. approximate, for PQ factories)."""
        self._check_id(segment_id)
        with contextlib.suppress(RuntimeError):
            faiss.extract_index_ivf(self._faiss).make_direct_map()
        try:
            return self._faiss.reconstruct(int(segment_id))
        except RuntimeError as error:
            raise InputError(f"factory {self.factory!r} cannot return stored vectors: {faiss_message(error)}") from None

    def segments(self, ids: Sequence[int] | np.ndarray) -> list[Segment]:
        """Metadata for ``ids`` in the same order (ids must exist)."""
        ids = [int(i) for i in ids]
        for segment_id in ids:
            self._check_id(segment_id)
        found = segments_by_id(self._db, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise DataFormatError(f"index {self.path} has no metadata row for segment {missing[0]}")
        return [found[i] for i in ids]

    def segments_of_image(self, image: str | os.PathLike) -> list[Segment]:
        """Every segment stored for ``image`` (path as stored: absolute)."""
        return segments_of_image(self._db, str(image), self.ntotal)

    # ----------------------------------------------------------------------------- internals
    def _load(self) -> None:
        """Read the committed meta and the FAISS file it points to (see :func:`.storage.read_committed`)."""
        self._meta, self._faiss = read_committed(self._db, self.path)
        self._gpu, self._pending = None, None
        params = self._params or self._meta.get("search_params")
        if params:
            self.set_search_params(params)
        if not self.readonly:
            self._prune()

    def _commit(self) -> None:
        version = self.version + 1
        name = faiss_name(version)
        ntotal, folder = self.ntotal, self.path / FAISS_DIR
        if self.on_disk:  # the committed lists and the new ones, copied into the next version's data file
            write_ondisk(folder / TRAINED_NAME, [self._faiss, self._pending], folder / name)
        else:
            write_faiss(self._faiss, folder / name)
        updates = {"version": version, "faiss_file": name, "ntotal": ntotal}
        self._db.executemany(
            "UPDATE meta SET value = ? WHERE key = ?", [(json.dumps(v), k) for k, v in updates.items()]
        )
        self._db.execute("COMMIT")
        if self.on_disk:
            self._load()
            return
        self._meta.update(updates)
        self._gpu = None
        self._prune()

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._load()  # the in-memory FAISS index may hold uncommitted vectors

    def _prune(self) -> None:
        """Delete FAISS files other than the current and the previous version (old ones, orphans)."""
        prune_versions(self.path / FAISS_DIR, self.version)

    def _searcher(self) -> faiss.Index:
        """The index to search: sharded over the GPUs when FAISS has some (see :func:`.gpu.on_gpus`)."""
        if self._gpu is None:
            self._gpu = on_gpus(self._faiss)
        return self._gpu

    def _check_vectors(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ConfigMismatchError(
                f"vectors of shape {tuple(vectors.shape)} do not fit index {self.path} of dimension {self.dim}",
                hint="use the backbone and layer the index was built with (see `index info`)",
            )
        return vectors

    def _check_id(self, segment_id: int) -> None:
        if not 0 <= int(segment_id) < self.ntotal:
            raise InputError(f"segment id {segment_id} is not in index {self.path} (0..{self.ntotal - 1})")

    def _require_writable(self) -> None:
        if self.readonly:
            raise InputError(f"index {self.path} is open read-only", hint="open it with readonly=False to add")
