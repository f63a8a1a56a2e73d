"""The FAISS stages of any staged vector build: choose and train the codec once, encode every shard.

Two roads build FAISS indexes from shards of vectors (:mod:`.shards`): segment indexes
(:mod:`.assemble`: vectors plus SQLite rows) and the patch memories of dense retrieval
(:mod:`dense_retrieval.retrieval.dense.memory_build`: vectors plus soft labels). What they share is here;
what each keeps beside the vectors, and how it is joined, is theirs. Every rank of a torchrun job calls
:func:`train_and_encode`, which waits at a barrier between the stages:

    train   rank 0: the factory (given, chosen for ``max_memory``, or another index's trained codec), a
            random training sample and disjoint held-out recall queries drawn from all shards (by global
            id, so independent of the number of shards and ranks), the trained empty index
    encode  every rank: its shards, with copies of the trained index (:func:`.codec.encode`)

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

from ...data.atomic import write_json
from ...distributed import Ranks
from ...errors import InputError
from .chooser import MIN_CODEC_TRAIN, TRAIN_POINTS_PER_LIST, choose_factory, default_nprobe, parse_size
from .codec import all_blocks, encode, file_digest, new_index, sample_ids, train
from .recall import measure_recall
from .shards import Shard, Staging, offsets, read_rows
from .storage import DEFAULT_FACTORY, TRAINED_NAME

RECALL_QUERIES = 1000
TRAINED_RECORD = "trained.json"
HELD_OUT = "queries.npy"


@dataclass(frozen=True)
class IndexOptions:
    """How the FAISS side of an index is made (``index build`` options; at most one of the first three).

    Attributes:
        factory: FAISS factory string; None: ``Flat`` unless ``max_memory`` or ``codec_from`` decide.
        max_memory: budget of the FAISS index ("8G", "512M", bytes): the factory is chosen for it.
        codec_from: an index whose trained codec (and factory) to encode with, so the two can be merged.
        on_disk: IVF lists in one memory-mapped file instead of memory.
        recall_queries: held-out vectors recall is measured on (approximate indexes; 0: none).
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


def check_factory(options: IndexOptions, dim: int) -> None:
    """Refuse, before any extraction, a factory FAISS cannot make for vectors of ``dim``."""
    if options.factory is not None:
        new_index(dim, options.factory)


def train_and_encode(
    staging: Staging,
    shards: Sequence[Shard],
    options: IndexOptions,
    ranks: Ranks | None = None,
    log: Callable[[str], None] = lambda message: None,
    codec: tuple[Path, str] | None = None,
) -> dict:
    """Stages train and encode (module doc); returns the training record (every rank).

    Args:
        codec: (trained codec file, factory) to encode with instead of training (``--codec-from``).
    """
    ranks = ranks or Ranks()
    total = int(offsets(shards)[-1])
    if total == 0:
        raise InputError("no vectors to index", hint="check the inputs")
    trained = staging.path / TRAINED_NAME
    if ranks.is_main:
        _train_stage(staging, shards, options, codec, log)
    ranks.barrier()
    record = json.loads((staging.path / TRAINED_RECORD).read_text())
    digest = file_digest(trained)
    starts = offsets(shards)
    log(f"encoding {len(shards)} shards with {record['factory']}")
    for number in ranks.mine(len(shards)):
        encode(shards[number], int(starts[number]), trained, digest)
    ranks.barrier()
    return record


def _train_stage(
    staging: Staging,
    shards: Sequence[Shard],
    options: IndexOptions,
    codec: tuple[Path, str] | None,
    log: Callable[[str], None],
) -> None:
    """Rank 0: choose the factory, draw the samples, train once (kept when a rerun asks for the same)."""
    total, dim = int(offsets(shards)[-1]), shards[0].dim
    choice = choose_factory(total, dim, options.budget, options.on_disk) if options.budget is not None else None
    factory = choice.factory if choice else (options.factory or DEFAULT_FACTORY)
    if codec is not None:
        factory = codec[1]
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
        "codec_from": {"index": str(options.codec_from), "sha256": file_digest(codec[0])} if codec else None,
    }
    plan_file = staging.path / TRAINED_RECORD
    if plan_file.is_file() and json.loads(plan_file.read_text()).get("plan") == plan:
        return
    train_ids, query_ids = sample_ids(total, train_size, plan["held_out"])
    started = time.perf_counter()
    if codec is not None:
        log(f"encoding with the trained codec of {options.codec_from} ({factory})")
        shutil.copyfile(codec[0], staging.path / TRAINED_NAME)
        result = {"factory": factory, "train_size": 0}
    else:
        log(f"training {factory} on {len(train_ids)} of {total} vectors" if factory != "Flat" else "Flat: exact")
        result = train(shards, factory, train_ids, staging.path / TRAINED_NAME)
    np.save(staging.path / HELD_OUT, query_ids)
    write_json(plan_file, {"plan": plan, **result, "train_seconds": round(time.perf_counter() - started, 2)})


def held_out_recall(
    staging: Staging,
    shards: Sequence[Shard],
    record: dict,
    search: Callable[[np.ndarray, int], np.ndarray],
    k: int = 10,
) -> dict | None:
    """Recall@1/@k of ``search`` on the held-out vectors of the train stage against exact search, or None.

    Args:
        search: the joined index's search, queries float32 [Q, d], k -> ids int64 [Q, k].
        k: neighbours compared (segment indexes: 10; patch memories: the neighbours they are read with).
    """
    plan = record["plan"]
    if not plan["held_out"]:
        return None
    query_ids = np.load(staging.path / HELD_OUT)
    queries = read_rows(shards, query_ids)
    recall = measure_recall(search, queries, query_ids, all_blocks(shards), k=k)
    recall["search_params"] = plan["search_params"]
    return recall
