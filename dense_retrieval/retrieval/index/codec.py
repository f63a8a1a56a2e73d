"""The FAISS side of a sharded build: train the codec once, encode every shard, join the encoded parts.

The FAISS recipe for collections that outgrow one process (FAISS's ``demo_ondisk_ivf.py``): the coarse
quantizer and codec are trained once, on a sample drawn from all shards; each shard is encoded by a
copy of that trained, empty index (in parallel, one rank per shard) with the *global* ids of its
vectors; the encoded inverted lists are then concatenated, in memory or into one memory-mapped file
(:mod:`.ondisk`). Lists are joined in shard order and every shard's ids continue the previous shard's,
so the result holds exactly the codes and ids that one process adding every vector in order would.

Factories that cannot be joined this way (HNSW) are filled by one process adding the shards' vectors in
order. Exact ``Flat`` indexes are joined like any flat-code index (no training).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np

from ...data.atomic import write_json
from ...data.outputs import remove_owned
from ...errors import InputError
from .ondisk import faiss_output_logged, is_ivf, merge_to_disk, read_part
from .shards import Shard, read_rows
from .storage import check_factory, faiss_message, write_faiss

PART_BYTES = 256 << 20  # codes of one encoded part held in memory while encoding
READ_BLOCK = 20_000  # vectors read from a shard at a time


def sample_ids(total: int, train: int, held_out: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint random global ids, sorted: ``train`` to train on and ``held_out`` recall queries.

    The draw depends only on ``total`` and the sizes (not on the number of shards or ranks).
    """
    rng = np.random.default_rng(seed)
    held_out = min(held_out, total)
    chosen = rng.permutation(total)
    queries = np.sort(chosen[:held_out])
    rest = chosen[held_out:]
    return np.sort(rest[: min(train, len(rest))]), queries


def kind_of(index: faiss.Index) -> str:
    """How shards are joined: "ivf" (lists), "codes" (flat codes: Flat, SQ, PQ) or "serial" (HNSW, others)."""
    if is_ivf(index):
        return "ivf"
    if isinstance(faiss.downcast_index(index), faiss.IndexFlatCodes):
        return "codes"
    return "serial"


def new_index(dim: int, factory: str) -> faiss.Index:
    """An empty inner-product index from a factory string (InputError naming a bad one, or an IVF without lists)."""
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise InputError(
            f"invalid FAISS factory string {factory!r}: {faiss_message(error)}",
            hint="e.g. 'Flat', 'IVF1024,SQ8', 'IVF4096,PQ64', 'OPQ64_512,IVF4096,PQ64', 'HNSW32'",
        ) from None
    check_factory(index, factory)
    return index


def train(shards: Sequence[Shard], factory: str, train_ids: np.ndarray, out: Path) -> dict:
    """Train ``factory`` on the vectors of ``train_ids`` (global) and write the empty index to ``out``."""
    index = new_index(shards[0].dim, factory)
    needs_training = not index.is_trained
    if needs_training:
        sample = read_rows(shards, train_ids)
        try:
            index.train(sample)
        except RuntimeError as error:
            raise InputError(
                f"cannot train FAISS index {factory!r} on {len(sample)} vectors: {faiss_message(error)}",
                hint="index more segments, or choose a factory with fewer lists (or --max-memory)",
            ) from None
    write_faiss(index, out)
    return {"factory": factory, "train_size": int(len(train_ids)) if needs_training else 0}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encode(shard: Shard, first_id: int, trained: Path, trained_digest: str) -> None:
    """Encode ``shard`` with a copy of the trained index into ``shard/encoded/part-NNN.faiss`` (kept if done).

    IVF parts carry the global ids ``first_id ...``; flat-code parts rely on being joined in order.
    """
    marker = shard.encoded / "done.json"
    if marker.is_file() and json.loads(marker.read_text()).get("trained") == trained_digest:
        return
    remove_owned(shard.encoded, shard.path)
    shard.encoded.mkdir()
    template = faiss.read_index(str(trained))
    kind = kind_of(template)
    parts = 0
    if kind != "serial" and shard.segments:
        code = faiss.extract_index_ivf(template).code_size if kind == "ivf" else template.sa_code_size()
        rows = max(READ_BLOCK, PART_BYTES // (code + 8))
        for start in range(0, shard.segments, rows):
            part = faiss.read_index(str(trained))
            stop = min(start + rows, shard.segments)
            for block_start in range(start, stop, READ_BLOCK):
                block = shard.read(block_start, min(block_start + READ_BLOCK, stop))
                if kind == "ivf":
                    ids = np.arange(first_id + block_start, first_id + block_start + len(block), dtype=np.int64)
                    part.add_with_ids(block, ids)
                else:
                    part.add(block)
            write_faiss(part, shard.encoded / f"part-{parts:03d}.faiss")
            parts += 1
    write_json(marker, {"trained": trained_digest, "parts": parts, "kind": kind})


def parts_of(shard: Shard) -> list[Path]:
    return sorted(shard.encoded.glob("part-*.faiss"))


def join(shards: Sequence[Shard], trained: Path, header: Path, on_disk: bool) -> int:
    """Join the encoded shards into the FAISS file ``header`` (plus its data file when ``on_disk``)."""
    index = faiss.read_index(str(trained))
    kind = kind_of(index)
    if on_disk and kind != "ivf":
        raise InputError(f"--on-disk needs an IVF factory, not {kind!r} ones", hint="e.g. IVF4096,SQ8 or --max-memory")
    if kind == "ivf" and on_disk:
        parts = [read_part(path) for shard in shards for path in parts_of(shard)]
        ntotal = merge_to_disk(index, parts, header)
        write_faiss(index, header)
        return ntotal
    if kind == "serial":
        for shard in shards:
            for block in shard.blocks(READ_BLOCK):
                index.add(block)
    else:
        target = faiss.extract_index_ivf(index) if kind == "ivf" else index
        for shard in shards:
            for path in parts_of(shard):
                part = faiss.read_index(str(path))
                source = faiss.extract_index_ivf(part) if kind == "ivf" else part
                target.merge_from(source, 0)
        index.ntotal = target.ntotal
    with faiss_output_logged():
        write_faiss(index, header)
    return int(index.ntotal)


def all_blocks(shards: Sequence[Shard]) -> Iterator[np.ndarray]:
    """Every stored vector, in global id order, in blocks of at most 128 MB (for exact search)."""
    for shard in shards:
        yield from shard.blocks(max(1024, (128 << 20) // (4 * shard.dim)))
