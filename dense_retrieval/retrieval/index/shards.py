"""The staging folder of an index build: shards of extracted segments, the trained codec, encoded parts.

A build of ``OUT`` keeps its intermediate results next to it, in ``.OUT.build/``, until the index is
complete; a rerun of the same build (same inputs, features, proposals, pooling, shard size) reuses
what is finished there and redoes the rest::

    .OUT.build/
      plan.json                  what the staged results are of; another plan empties the folder first
      shard-000003/              a complete shard (written as shard-000003.partial/, renamed when done)
        vectors.f32              float32 [n, dim]: the pooled segment vectors, row i = local segment i
        segments.sqlite          the ``segments`` and ``images`` tables of the index (same schema), local ids
        shard.json               images [start, stop), segments n, dim, proposal statistics
        encoded/                 the shard encoded with the trained codec (global ids), part-000.faiss ...
      trained.faiss, trained.json  the trained, empty FAISS index and what it was trained for

Shard ``s`` holds images ``[s * shard_images, (s + 1) * shard_images)`` of the input list; under
torchrun rank ``r`` extracts shards ``r, r + world, ...``. Row ids of the final index are the shard
offset plus the local id, so they do not depend on the number of ranks.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.atomic import write_json
from ...data.outputs import remove_owned
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


class ShardWriter:
    """Writes one shard: vectors and rows appended image by image, renamed into place by :meth:`finish`."""

    def __init__(self, staging: Path, number: int, dim: int):
        self.final = staging / shard_name(number)
        self.path = staging / f"{shard_name(number)}.partial"
        remove_owned(self.path, staging)  # what a killed run left
        self.path.mkdir(parents=True)
        self.number, self.dim, self.count = number, dim, 0
        self._vectors = open(self.path / VECTORS, "wb")  # noqa: SIM115 - closed by finish()
        self._db = sqlite3.connect(self.path / ROWS, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")  # durability comes from fsync + rename in finish()
        self._db.executescript(SCHEMA + IMAGES_SCHEMA + ";")
        self._db.execute("BEGIN")

    def add(self, vectors: np.ndarray, records: Sequence[SegmentRecord]) -> None:
        """Append float32 [k, dim] vectors and their k records (local ids continue from the last add)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(records), self.dim):
            raise ValueError(f"{vectors.shape} vectors for {len(records)} records of dim {self.dim}")
        rows = [segment_row(self.count + i, record) for i, record in enumerate(records)]
        self._db.executemany(f"INSERT INTO segments ({ROW_COLUMNS}) VALUES ({', '.join('?' * 12)})", rows)
        self._vectors.write(vectors.tobytes())
        self.count += len(records)

    def add_image(self, image: str, sha256: str) -> None:
        """Record an image of the shard and the sha256 of its file (``index add`` skips it later)."""
        insert_image(self._db, image, sha256)

    def finish(self, info: dict) -> Shard:
        """Make the shard durable and complete: fsync, write shard.json, rename to its final name."""
        self._db.execute("COMMIT")
        self._db.close()
        self._vectors.flush()
        os.fsync(self._vectors.fileno())
        self._vectors.close()
        info = {**info, "number": self.number, "segments": self.count, "dim": self.dim}
        write_json(self.path / DONE, info)
        remove_owned(self.final, self.final.parent)
        os.replace(self.path, self.final)
        return Shard(self.final, self.number, self.count, self.dim, info)

    def abort(self) -> None:
        self._db.close()
        self._vectors.close()
        remove_owned(self.path, self.path.parent)


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
