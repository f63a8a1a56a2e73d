"""Building a segment index in stages that one process or a torchrun job of many runs alike.

    extract   every rank proposes and pools the segments of its shards of the input list (index/shards.py)
    train     rank 0 draws a sample from all shards and trains the FAISS codec once (--factory, or the
              factory --max-memory chooses for the collection's size: index/chooser.py)
    encode    every rank encodes its shards with a copy of the trained index, with global ids
    join      rank 0 joins the encoded shards (in memory, or --on-disk into one memory-mapped file),
              copies the segment rows, measures recall@1/@10 on held-out segments against exact search,
              and renames the finished folder to OUT (index/assemble.py)

Between stages the ranks wait at a barrier; results go through files in ``.OUT.build/``, which must be
on a folder every rank sees (one machine, or a cluster's shared file system). A rerun of the same build
keeps every finished shard, trained codec and encoded shard and redoes the rest, so a killed rank costs
its unfinished shard only. Shard boundaries depend on the input list and ``shard_images`` alone, ids are
shard offset + local id, so the index equals the one a single process builds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..backbone.features import FeatureExtractor
from ..data.atomic import write_json
from ..data.images import read_image
from ..data.outputs import locked
from ..distributed import Ranks
from ..errors import InputError
from .config import PoolingMode
from .index import index_config
from .index.assemble import IndexOptions, check_options, index_from_shards
from .index.codec import file_digest
from .index.shards import Shard, ShardWriter, Staging, offsets
from .index.storage import replacing_index
from .pooling import pool_masks
from .proposals import ProposalConfig, ProposalStats, Proposer
from .segments import SegmentRecord

MAX_SHARD_IMAGES = 1000


def build_staged(
    images: list[str | os.PathLike],
    out: str | os.PathLike,
    extractor: FeatureExtractor,
    proposals: ProposalConfig,
    pooling: PoolingMode = "upsample",
    options: IndexOptions | None = None,
    overwrite: bool = False,
    shard_images: int | None = None,
    ranks: Ranks | None = None,
    log: Callable[[str], None] | None = None,
) -> dict | None:
    """Build the index of ``images`` at ``out`` (see the module doc); returns the report on rank 0, else None.

    Args:
        options: factory / memory budget / codec, on-disk lists, recall queries (:class:`.IndexOptions`).
        shard_images: images per shard (default: the input split evenly over the ranks, at most 1000).
        ranks: this process's place in a torchrun job (default: a single process).
        log: where rank 0 reports progress (one line per stage), e.g. the CLI's stderr.
    """
    ranks = ranks or Ranks()
    options = options or IndexOptions()
    log = log if (log is not None and ranks.is_main) else (lambda message: None)
    out = Path(out).resolve()
    paths = list(dict.fromkeys(Path(p).resolve() for p in images))  # an image given twice is indexed once
    if not paths:
        raise InputError("no images to index")
    if shard_images is not None and shard_images < 1:
        raise InputError(f"images per shard must be at least 1, got {shard_images}")
    proposer = Proposer(proposals)
    proposer.check_images(paths)
    check_options(options, extractor.channels)
    config = index_config(extractor.describe(), pooling, extractor.channels)
    size = shard_images or max(1, min(MAX_SHARD_IMAGES, math.ceil(len(paths) / ranks.world)))
    count = math.ceil(len(paths) / size)
    digest = hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()
    plan = {"inputs": digest, "images": len(paths), "shard_images": size, "record": config}
    staging = Staging(out, {**plan, "proposals": proposals.describe()})
    with contextlib.ExitStack() as held:
        # every rank checks --out; rank 0 holds the old index's writer lock and the build folder meanwhile
        held.enter_context(replacing_index(out, overwrite, hold=ranks.is_main))
        if ranks.is_main:
            staging.path.mkdir(parents=True, exist_ok=True)
            held.enter_context(locked(staging.path, "build folder"))
            kept = staging.prepare()
            log(f"build folder {staging.path}: {'resuming' if kept else 'new'}, {count} shards of {size} images")
        ranks.barrier()
        try:
            return _build(staging, paths, size, count, out, extractor, proposer, pooling, config, options, ranks, log)
        except BaseException:
            if ranks.is_main and not staging.has_results():
                staging.remove()  # nothing finished that a rerun could reuse: a refused build leaves no trace
            raise


def _build(
    staging: Staging,
    paths: list[Path],
    size: int,
    count: int,
    out: Path,
    extractor: FeatureExtractor,
    proposer: Proposer,
    pooling: PoolingMode,
    config: dict,
    options: IndexOptions,
    ranks: Ranks,
    log: Callable[[str], None],
) -> dict | None:
    """The stages of :func:`build_staged` once the output is checked and the build folder is ready."""
    started = time.perf_counter()
    redone = []
    for number in ranks.mine(count):
        if staging.shard(number) is None:
            chunk = paths[number * size : (number + 1) * size]
            _extract(staging, number, number * size, chunk, extractor, proposer, pooling, extractor.channels)
            redone.append(number)
    write_json(staging.path / f"rank-{ranks.rank}.json", {"extracted": redone, "world": ranks.world})
    ranks.barrier()
    shards = staging.shards(count)
    if int(offsets(shards)[-1]) == 0:
        if ranks.is_main:
            staging.remove()  # shards without segments: nothing worth keeping for a rerun
        raise InputError(f"no segments were found in the {len(paths)} images", hint="try another --proposals")
    extract_seconds = time.perf_counter() - started
    report = index_from_shards(staging, shards, out, config, options, ranks, log)
    if report is None:
        return None
    stats = ProposalStats()
    for shard in shards:
        for key, value in shard.info["proposal_stats"].items():
            setattr(stats, key, getattr(stats, key) + value)
    extracted = sorted({n for r in range(ranks.world) for n in _extracted(staging, r)})
    staging.remove()
    total = int(offsets(shards)[-1])
    report.update(
        images=len(paths),
        added=total,
        segments=total,
        skipped=0,
        proposals=proposer.config.describe(),
        proposal_stats=stats.as_dict(),
        shards={"count": count, "images_per_shard": size, "extracted_now": extracted, "ranks": ranks.world},
        extract_seconds=round(extract_seconds, 2),
    )
    return report


def _extract(
    staging: Staging,
    number: int,
    first_image: int,
    paths: list[Path],
    extractor: FeatureExtractor,
    proposer: Proposer,
    pooling: PoolingMode,
    dim: int,
) -> Shard:
    """Propose, pool and write the segments of ``paths`` as shard ``number``."""
    writer = ShardWriter(staging.path, number, dim)
    proposer.stats = ProposalStats()
    try:
        decoded = ((path, read_image(path, extractor.preprocessing.decode)) for path in paths)
        stream = extractor.stream(decoded, lambda pair: pair[1], total=len(paths), desc=f"shard {number}")
        for (path, rgb), maps in stream:
            features = maps.single()
            found = proposer(path, rgb, features if proposer.needs_features else None)
            writer.add_image(str(found.image), file_digest(path))
            if not len(found.masks):
                continue
            vectors = pool_masks(features, torch.from_numpy(found.masks), pooling).numpy()
            records = [
                SegmentRecord(image=str(found.image), method=found.method, mask=mask, label=label)
                for mask, label in zip(found.masks, found.labels, strict=True)
            ]
            writer.add(vectors, records)
    except BaseException:
        writer.abort()
        raise
    return writer.finish(
        {"images": [first_image, first_image + len(paths)], "proposal_stats": proposer.stats.as_dict()}
    )


def _extracted(staging: Staging, rank: int) -> list[int]:
    try:
        return json.loads((staging.path / f"rank-{rank}.json").read_text())["extracted"]
    except (OSError, ValueError, KeyError):
        return []
