"""From finished shards to one index folder: choose and train the codec, encode, join, measure recall.

Stages 2-4 of a build (stage 1, extraction, is in :mod:`dense_retrieval.retrieval.build`); every rank
of a torchrun job calls :func:`index_from_shards`, which waits at a barrier between stages:

    train   rank 0: the factory (``--factory``, chosen for ``--max-memory``, or ``--codec-from`` another
            index), a random training sample and disjoint held-out recall queries drawn from all shards
            (by global id, so independent of the number of shards and ranks), the trained empty index
    encode  every rank: its shards, with copies of the trained index (:func:`.codec.encode`)
    join    rank 0: the joined FAISS file(s), the segment rows with global ids, recall@1/@10 of the
            held-out segments against exact search, the build record, then the folder renamed to OUT

Finished stages are kept in the staging folder and skipped by a rerun that asks for the same thing.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...data.atomic import atomic_directory, write_json
from ...distributed import Ranks
from ...errors import ConfigMismatchError, InputError
from .chooser import MIN_CODEC_TRAIN, TRAIN_POINTS_PER_LIST, choose_factory, default_nprobe, parse_size
from .codec import all_blocks, encode, file_digest, join, new_index, sample_ids, train
from .recall import measure_recall
from .segment_index import SegmentIndex
from .shards import Shard, Staging, offsets, read_rows
from .storage import (
    DB_NAME,
    DEFAULT_FACTORY,
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

RECALL_QUERIES = 1000


@dataclass(frozen=True)
class IndexOptions:
    """How the FAISS side of an index is made (``index build`` options; at most one of the first three).

    Attributes:
        factory: FAISS factory string; None: ``Flat`` unless ``max_memory`` or ``codec_from`` decide.
        max_memory: budget of the FAISS index ("8G", "512M", bytes): the factory is chosen for it.
        codec_from: an index whose trained codec (and factory) to encode with, so the two can be merged.
        on_disk: IVF lists in one memory-mapped file instead of memory.
        recall_queries: held-out segments recall@1/@10 is measured on (approximate indexes; 0: none).
    """

    factory: str | None = None
    max_memory: str | int | None = None
    codec_from: str | None = None
    on_disk: bool = False
    recall_queries: int = RECALL_QUERIES

    def __post_init__(self) -> None:
        if sum(option is not None for option in (self.factory, self.max_memory, self.codec_from)) > 1:
            raise InputError("--factory, --max-memory and --codec-from exclude each other", hint="give one of them")
        if self.max_memory is not None:
            parse_size(self.max_memory)
        if self.recall_queries < 0:
            raise InputError(f"recall queries must be >= 0, got {self.recall_queries}")
        if self.on_disk and self.max_memory is None and self.codec_from is None and "IVF" not in (self.factory or ""):
            raise InputError(
                f"--on-disk keeps inverted lists on disk: it needs an IVF factory, not {self.factory or 'Flat'!r}",
                hint="e.g. --factory IVF4096,SQ8, or --max-memory SIZE",
            )

    @property
    def budget(self) -> int | None:
        return parse_size(self.max_memory) if self.max_memory is not None else None


def check_options(options: IndexOptions, dim: int) -> None:
    """Refuse, before any extraction, what can be refused without the vectors: a factory FAISS cannot make
    for ``dim``, or a ``--codec-from`` that is no index with a trained codec of that dimension."""
    if options.factory is not None:
        new_index(dim, options.factory)
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
    trained = staging.path / TRAINED_NAME
    if ranks.is_main:
        _train_stage(staging, shards, options, log)
    ranks.barrier()
    record = json.loads((staging.path / "trained.json").read_text())
    digest = file_digest(trained)
    starts = offsets(shards)
    log(f"encoding {len(shards)} shards with {record['factory']}")
    for number in ranks.mine(len(shards)):
        encode(shards[number], int(starts[number]), trained, digest)
    ranks.barrier()
    if not ranks.is_main:
        return None
    log(f"joining {len(shards)} shards ({total} segments) into {out}")
    return _join_stage(out, staging, shards, record, config, options.on_disk, ranks)


def _train_stage(staging: Staging, shards: Sequence[Shard], options: IndexOptions, log: Callable[[str], None]) -> None:
    """Rank 0: choose the factory, draw the samples, train once (kept when a rerun asks for the same)."""
    total, dim = int(offsets(shards)[-1]), shards[0].dim
    choice = choose_factory(total, dim, options.budget, options.on_disk) if options.budget is not None else None
    factory = choice.factory if choice else (options.factory or DEFAULT_FACTORY)
    codec = None
    if options.codec_from is not None:
        codec, factory = _codec_of(Path(options.codec_from), dim)
    match = re.search(r"IVF(\d+)", factory)
    nlist = int(match.group(1)) if match else 0
    if choice:
        train_size, search_params = choice.train_size, choice.search_params
    else:
        train_size = max(TRAIN_POINTS_PER_LIST * nlist, 4 * MIN_CODEC_TRAIN)
        search_params = f"nprobe={default_nprobe(nlist)}" if nlist else None
    plan = {
        "factory": factory,
        "total": total,
        "train_size": train_size,
        "held_out": min(options.recall_queries, total // 10) if factory != "Flat" or choice else 0,
        "search_params": search_params,
        "choice": asdict(choice) if choice else None,
        "codec_from": {"index": str(options.codec_from), "sha256": file_digest(codec)} if codec else None,
    }
    plan_file = staging.path / "trained.json"
    if plan_file.is_file() and json.loads(plan_file.read_text()).get("plan") == plan:
        return
    train_ids, query_ids = sample_ids(total, train_size, plan["held_out"])
    started = time.perf_counter()
    if codec is not None:
        log(f"encoding with the trained codec of {options.codec_from} ({factory})")
        shutil.copyfile(codec, staging.path / TRAINED_NAME)
        result = {"factory": factory, "train_size": 0}
    else:
        log(f"training {factory} on {len(train_ids)} of {total} segments" if factory != "Flat" else "Flat: exact")
        result = train(shards, factory, train_ids, staging.path / TRAINED_NAME)
    np.save(staging.path / "queries.npy", query_ids)
    write_json(plan_file, {"plan": plan, **result, "train_seconds": round(time.perf_counter() - started, 2)})


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
        recall = None
        with SegmentIndex.open(tmp) as index:
            index_bytes = index.index_bytes()
            if plan["held_out"]:
                query_ids = np.load(staging.path / "queries.npy")
                queries = read_rows(shards, query_ids)
                recall = measure_recall(lambda q, k: index.search(q, k)[1], queries, query_ids, all_blocks(shards))
                recall["search_params"] = plan["search_params"]
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
