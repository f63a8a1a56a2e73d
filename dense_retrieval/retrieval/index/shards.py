"""The staging folder of a staged vector build: shards of vectors, the trained codec, encoded parts.

A build of ``OUT`` keeps its intermediate results next to it, in ``.OUT.build/``, until the output is
complete; a rerun of the same build (same inputs, features, settings, shard size) reuses what is
finished there and redoes the rest::

    .OUT.build/
      plan.json                  what the staged results are of; another plan empties the folder first
      shard-000003/              a complete shard (written as shard-000003.partial/, renamed when done)
        vectors.f32              float32 [n, dim]: the vectors, row i = local id i
        shard.json               images [start, stop), vectors n (key ``segments``), dim, the road's own record
        encoded/                 the shard encoded with the trained codec (global ids), part-000.faiss ...
        segments.sqlite          segment indexes: the ``segments`` and ``images`` tables (same schema), local ids
        labels.*, origins.i32    patch memories: soft labels and where each patch comes from (retrieval/dense)
      trained.faiss, trained.json  the trained, empty FAISS index and what it was trained for

Shard ``s`` holds images ``[s * shard_images, (s + 1) * shard_images)`` of the input list; under
torchrun rank ``r`` extracts shards ``r, r + world, ...``. Row ids of the final index are the shard
offset plus the local id, so they do not depend on the number of ranks.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.atomic import write_json
from ...data.outputs import locked, remove_owned
from ...distributed import Ranks
from ...errors import DataFormatError
from ...records import identity
from ..segments import SegmentRecord, segment_row
from .storage import IMAGES_SCHEMA, ROW_COLUMNS, SCHEMA, insert_image

PLAN_FORMAT = 1
VECTORS = "vectors.f32"
ROWS = "segments.sqlite"
DONE = "shard.json"
ENCODED = "encoded"


def staging_folder(out: Path) -> Path:
    """Where the build of ``out`` keeps its shards: the hidden sibling ``.OUT.build``."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}.build"


def shard_name(number: int) -> str:
    return f"shard-{number:06d}"


@dataclass(frozen=True)
class Shard:
    """A complete shard: ``segments`` vectors of ``dim`` and their rows, from images ``[start, stop)``."""

    path: Path
    number: int
    segments: int
    dim: int
    info: dict

    def read(self, start: int, stop: int) -> np.ndarray:
        """float32 [stop - start, dim]: vectors ``start .. stop - 1``, read (not mapped: only they take memory)."""
        stop = min(stop, self.segments)
        count = max(stop - start, 0) * self.dim
        return np.fromfile(self.path / VECTORS, np.float32, count, offset=start * self.dim * 4).reshape(-1, self.dim)

    def take(self, local: np.ndarray) -> np.ndarray:
        """float32 [len(local), dim]: the vectors of local ids ``local``, read row by row."""
        out = np.empty((len(local), self.dim), np.float32)
        row_bytes = self.dim * 4
        with open(self.path / VECTORS, "rb") as handle:
            for row, index in enumerate(local):
                handle.seek(int(index) * row_bytes)
                handle.readinto(memoryview(out[row]).cast("B"))
        return out

    def blocks(self, rows: int) -> Iterator[np.ndarray]:
        """The vectors in contiguous float32 [<= rows, dim] blocks, in order."""
        for start in range(0, self.segments, rows):
            yield self.read(start, start + rows)

    @property
    def rows_file(self) -> Path:
        return self.path / ROWS

    @property
    def encoded(self) -> Path:
        return self.path / ENCODED


class VectorShardWriter:
    """Writes one shard's vectors, renamed into place by :meth:`finish`; subclasses add what each vector is.

    Subclasses keep their own files in :attr:`path` (the ``.partial`` folder) and make them durable in
    :meth:`_close_payload` (called by :meth:`finish` before the rename) or drop them in :meth:`_drop_payload`.
    """

    def __init__(self, staging: Path, number: int, dim: int):
        self.final = staging / shard_name(number)
        self.path = staging / f"{shard_name(number)}.partial"
        remove_owned(self.path, staging)  # what a killed run left
        self.path.mkdir(parents=True)
        self.number, self.dim, self.count = number, dim, 0
        self._vectors = open(self.path / VECTORS, "wb")  # noqa: SIM115 - closed by finish()

    def add_vectors(self, vectors: np.ndarray) -> int:
        """Append float32 [k, dim] vectors; returns the local id of the first (ids continue from the last add)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {vectors.shape} for a shard of dim {self.dim}")
        first = self.count
        self._vectors.write(vectors.tobytes())
        self.count += len(vectors)
        return first

    def _close_payload(self) -> None:
        """Make the subclass's files complete and durable (before the shard is renamed into place)."""

    def _drop_payload(self) -> None:
        """Close the subclass's files of an aborted shard."""

    def finish(self, info: dict) -> Shard:
        """Make the shard durable and complete: fsync, write shard.json, rename to its final name."""
        self._close_payload()
        self._vectors.flush()
        os.fsync(self._vectors.fileno())
        self._vectors.close()
        info = {**info, "number": self.number, "segments": self.count, "dim": self.dim}
        write_json(self.path / DONE, info)
        remove_owned(self.final, self.final.parent)
        os.replace(self.path, self.final)
        return Shard(self.final, self.number, self.count, self.dim, info)

    def abort(self) -> None:
        self._drop_payload()
        self._vectors.close()
        remove_owned(self.path, self.path.parent)


class ShardWriter(VectorShardWriter):
    """A shard of a segment index: vectors plus their rows in ``segments.sqlite`` (local ids)."""

    def __init__(self, staging: Path, number: int, dim: int):
        super().__init__(staging, number, dim)
        self._db = sqlite3.connect(self.path / ROWS, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")  # durability comes from fsync + rename in finish()
        self._db.executescript(SCHEMA + IMAGES_SCHEMA + ";")
        self._db.execute("BEGIN")

    def add(self, vectors: np.ndarray, records: Sequence[SegmentRecord]) -> None:
        """Append float32 [k, dim] vectors and their k records (local ids continue from the last add)."""
        if len(vectors) != len(records):
            raise ValueError(f"{len(vectors)} vectors for {len(records)} records")
        rows = [segment_row(self.count + i, record) for i, record in enumerate(records)]
        self._db.executemany(f"INSERT INTO segments ({ROW_COLUMNS}) VALUES ({', '.join('?' * 12)})", rows)
        self.add_vectors(vectors)

    def add_image(self, image: str, sha256: str) -> None:
        """Record an image of the shard and the sha256 of its file (``index add`` skips it later)."""
        insert_image(self._db, image, sha256)

    def _close_payload(self) -> None:
        self._db.execute("COMMIT")
        self._db.close()

    def _drop_payload(self) -> None:
        self._db.close()


class Staging:
    """The staging folder of one build (see the module doc)."""

    def __init__(self, out: Path, plan: dict):
        self.path = staging_folder(out)
        self.plan = {"format": PLAN_FORMAT, **identity(plan)}

    def prepare(self) -> bool:
        """Create the folder, or empty it when it holds another plan's results; True if results were kept.

        The folder itself stays (a build holds it locked, :func:`~dense_retrieval.data.outputs.locked`).
        """
        plan_file = self.path / "plan.json"
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            if json.loads(plan_file.read_text()) == self.plan:
                return True
        except (OSError, ValueError):
            pass
        for entry in self.path.iterdir():
            remove_owned(entry, self.path)
        write_json(plan_file, self.plan)
        return False

    def shard(self, number: int) -> Shard | None:
        """Shard ``number`` if it is complete, else None."""
        path = self.path / shard_name(number)
        try:
            info = json.loads((path / DONE).read_text())
        except (OSError, ValueError):
            return None
        shard = Shard(path, number, int(info["segments"]), int(info["dim"]), info)
        expected = shard.segments * shard.dim * 4
        if not (path / VECTORS).is_file() or (path / VECTORS).stat().st_size != expected:
            raise DataFormatError(f"shard {path} is damaged: {VECTORS} does not hold {shard.segments} vectors")
        return shard

    def shards(self, count: int) -> list[Shard]:
        """All ``count`` shards, which must be complete."""
        found = [self.shard(number) for number in range(count)]
        missing = [shard_name(n) for n, shard in enumerate(found) if shard is None]
        if missing:
            raise DataFormatError(f"build folder {self.path} lacks finished shards: {', '.join(missing[:5])}")
        return found  # type: ignore[return-value]

    def has_results(self) -> bool:
        """Whether the folder holds anything finished (a complete shard, a trained codec) a rerun would reuse."""
        if not self.path.is_dir():
            return False
        return any((entry / DONE).is_file() or entry.name == "trained.faiss" for entry in self.path.iterdir())

    def remove(self) -> None:
        if self.path.exists():
            remove_owned(self.path, self.path.parent)

    @contextlib.contextmanager
    def held(self, ranks: Ranks, log: Callable[[str], None], what: str) -> Iterator[bool]:
        """Rank 0 prepares the folder and holds it locked for the block (a second build of OUT is refused);
        every rank waits for it. Yields whether finished results were kept. A block that fails before
        anything finished leaves no folder behind (a refused build leaves no trace)."""
        kept = False
        with contextlib.ExitStack() as held:
            if ranks.is_main:
                self.path.mkdir(parents=True, exist_ok=True)
                held.enter_context(locked(self.path, "build folder"))
                kept = self.prepare()
                log(f"build folder {self.path}: {'resuming' if kept else 'new'}, {what}")
            ranks.barrier()
            try:
                yield kept
            except BaseException:
                if ranks.is_main and not self.has_results():
                    self.remove()
                raise

    def extract_missing(self, count: int, ranks: Ranks, extract: Callable[[int], object]) -> list[Shard]:
        """Every rank extracts its shards (``ranks.mine``) that are not complete yet with ``extract(number)``,
        records which it redid, and waits for the others; returns all ``count`` shards."""
        redone = []
        for number in ranks.mine(count):
            if self.shard(number) is None:
                extract(number)
                redone.append(number)
        write_json(self.path / f"rank-{ranks.rank}.json", {"extracted": redone, "world": ranks.world})
        ranks.barrier()
        return self.shards(count)

    def extracted_now(self, world: int) -> list[int]:
        """The shards the ranks of this run extracted (not kept from an earlier run), sorted."""
        found: set[int] = set()
        for rank in range(world):
            try:
                found.update(json.loads((self.path / f"rank-{rank}.json").read_text())["extracted"])
            except (OSError, ValueError, KeyError):
                continue
        return sorted(found)


def offsets(shards: Sequence[Shard]) -> np.ndarray:
    """int64 [len(shards) + 1]: the global id of each shard's first segment, then the total."""
    return np.concatenate([[0], np.cumsum([shard.segments for shard in shards])]).astype(np.int64)


def read_rows(shards: Sequence[Shard], ids: np.ndarray) -> np.ndarray:
    """float32 [len(ids), dim]: the vectors of global ``ids`` (sorted or not), read from the shard files."""
    starts = offsets(shards)
    out = np.empty((len(ids), shards[0].dim), np.float32)
    owner = np.searchsorted(starts, ids, side="right") - 1
    for number in np.unique(owner):
        chosen = np.nonzero(owner == number)[0]
        out[chosen] = shards[number].take(ids[chosen] - starts[number])
    return out
