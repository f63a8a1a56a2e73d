"""From finished shards to one segment index folder: the FAISS stages, then the rows and the recall.

Stages 2-4 of a build (stage 1, extraction, is in :mod:`dense_retrieval.retrieval.build`); every rank
of a torchrun job calls :func:`index_from_shards`:

    train   rank 0: the factory (``--factory``, chosen for ``--max-memory``, or ``--codec-from`` another
            index), the training sample and held-out recall queries, the trained empty index (:mod:`.stages`)
    encode  every rank: its shards, with copies of the trained index (:mod:`.stages`)
    join    rank 0: the joined FAISS file(s), the segment rows with global ids, recall@1/@10 of the
            held-out segments against exact search, the build record, then the folder renamed to OUT

Finished stages are kept in the staging folder and skipped by a rerun that asks for the same thing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ...data.atomic import atomic_directory
from ...distributed import Ranks
from ...errors import ConfigMismatchError, InputError
from .codec import join
from .segment_index import SegmentIndex
from .shards import Shard, Staging, offsets
from .stages import IndexOptions, check_factory, held_out_recall, train_and_encode
from .storage import (
    DB_NAME,
    FAISS_DIR,
    TRAINED_NAME,
    acquire_writer_lock,
    connect,
    copy_rows,
    create_database,
    faiss_name,
    new_meta,
    update_meta,
)

__all__ = ["IndexOptions", "check_options", "index_from_shards"]


def check_options(options: IndexOptions, dim: int) -> None:
    """Refuse, before any extraction, what can be refused without the vectors: a factory FAISS cannot make
    for ``dim``, or a ``--codec-from`` that is no index with a trained codec of that dimension."""
    check_factory(options, dim)
    if options.codec_from is not None:
        _codec_of(Path(options.codec_from), dim)


def index_from_shards(
    staging: Staging,
    shards: Sequence[Shard],
    out: Path,
    config: dict,
    options: IndexOptions,
    ranks: Ranks | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict | None:
    """Stages train, encode and join (module doc); returns the report on rank 0, None on the others."""
    ranks = ranks or Ranks()
    total = int(offsets(shards)[-1])
    if total == 0:
        raise InputError("no segments to index", hint="try another --proposals")
    codec = _codec_of(Path(options.codec_from), shards[0].dim) if options.codec_from is not None else None
    record = train_and_encode(staging, shards, options, ranks, log, codec)
    if not ranks.is_main:
        return None
    log(f"joining {len(shards)} shards ({total} segments) into {out}")
    return _join_stage(out, staging, shards, record, config, options.on_disk, ranks)


def _codec_of(index: Path, dim: int) -> tuple[Path, str]:
    """The trained codec file and factory of the index at ``index`` (``--codec-from``)."""
    with SegmentIndex.open(index) as opened:
        factory, stored_dim = opened.factory, opened.dim
    codec = index / FAISS_DIR / TRAINED_NAME
    if not codec.is_file():
        raise InputError(f"index {index} has no trained codec ({FAISS_DIR}/{TRAINED_NAME})", hint="rebuild it first")
    if stored_dim != dim:
        raise ConfigMismatchError(f"index {index} holds vectors of dim {stored_dim}; these have dim {dim}")
    return codec, factory


def _join_stage(
    out: Path, staging: Staging, shards: Sequence[Shard], record: dict, config: dict, on_disk: bool, ranks: Ranks
) -> dict:
    """Rank 0: the finished index folder at ``out`` (atomic), with its build record and measured recall."""
    plan = record["plan"]
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with atomic_directory(out, final=True) as tmp:
        acquire_writer_lock(tmp).close()  # the lock file every index has (readers need not create it)
        (tmp / FAISS_DIR).mkdir()
        header = tmp / FAISS_DIR / faiss_name(1)
        ntotal = join(shards, staging.path / TRAINED_NAME, header, on_disk)
        seconds["faiss_join"] = time.perf_counter() - started
        shutil.copyfile(staging.path / TRAINED_NAME, tmp / FAISS_DIR / TRAINED_NAME)
        meta = new_meta(
            config,
            plan["factory"],
            shards[0].dim,
            header.name,
            version=1,
            ntotal=ntotal,
            on_disk=on_disk,
            search_params=plan["search_params"],
            build={
                "shards": len(shards),
                "ranks": ranks.world,
                "train_size": record.get("train_size", 0),
                "train_seconds": record.get("train_seconds"),
                "held_out": plan["held_out"],
                "codec_from": plan["codec_from"],
            },
        )
        db = create_database(tmp / DB_NAME, meta)
        try:
            for shard, start in zip(shards, offsets(shards), strict=False):
                copy_rows(db, shard.rows_file, int(start))
        finally:
            db.close()
        seconds["rows"] = time.perf_counter() - started - sum(seconds.values())
        with SegmentIndex.open(tmp) as index:
            index_bytes = index.index_bytes()
            recall = held_out_recall(staging, shards, record, lambda q, k: index.search(q, k)[1])
        seconds["recall"] = time.perf_counter() - started - sum(seconds.values())
        choice = plan["choice"]
        if choice:
            choice = {**choice, "index_bytes": index_bytes, "within_budget": index_bytes <= choice["budget_bytes"]}
        db = connect(tmp / DB_NAME, readonly=False)
        update_meta(db, {"recall": recall, "choice": choice})
        db.close()
    return {
        "index": str(out),
        "factory": plan["factory"],
        "on_disk": on_disk,
        "index_bytes": index_bytes,
        "search_params": plan["search_params"],
        "choice": choice,
        "recall": recall,
        "join_seconds": {stage: round(value, 2) for stage, value in seconds.items()},
    }
