"""``index merge A B ... --out C``: one index from indexes built separately with the same configuration.

Indexes can be merged when their recorded configurations are identical (run record: backbone, weights,
layer, stride, resize, pooling; dimension; factory) and, for trained factories, when they were encoded by
the same trained codec (``faiss/trained.faiss``, compared by content: build the parts with
``index build --codec-from FIRST``). Anything else is refused with every differing key named.

C holds A's segments with their ids, then B's with ids shifted by A's count, and so on. Inverted lists
are copied list by list through FAISS's InvertedLists API (ids shifted on the way) into memory or,
with ``on_disk``, into one memory-mapped data file; flat-code indexes (Flat, SQ, PQ) are concatenated.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from ...data.atomic import atomic_directory
from ...errors import ConfigMismatchError, InputError
from ...records import differences
from .codec import file_digest, kind_of
from .ondisk import data_file, faiss_output_logged
from .segment_index import SegmentIndex
from .storage import (
    DB_NAME,
    FAISS_DIR,
    TRAINED_NAME,
    acquire_writer_lock,
    copy_rows,
    create_database,
    faiss_name,
    new_meta,
    replacing_index,
    write_faiss,
)


def merge_key_differences(first: SegmentIndex, other: SegmentIndex) -> list[str]:
    """Keys (dotted) in which ``other`` differs from ``first`` in what a merge needs to be equal."""
    keys = [f"config.{key}" for key in differences(first.config, other.config)]
    for key in ("dim", "factory"):
        if getattr(first, key) != getattr(other, key):
            keys.append(key)
    if codec_digest(first) != codec_digest(other):
        keys.append("codec (faiss/trained.faiss)")
    return keys


def codec_digest(index: SegmentIndex) -> str | None:
    """sha256 of the trained, empty index the vectors were encoded with; None for an index without one
    whose factory needs no training (Flat), a value equal to nothing else for other indexes without one."""
    trained = index.path / FAISS_DIR / TRAINED_NAME
    if trained.is_file():
        return file_digest(trained)
    return None if index.factory == "Flat" else f"unknown codec of {index.path}"


def copy_lists(sources: Sequence[tuple[faiss.InvertedLists, int]], target: Path | None) -> faiss.InvertedLists:
    """New inverted lists holding every list of ``sources`` in order, ids shifted by each source's offset.

    Args:
        sources: (inverted lists, id offset) pairs with the same nlist and code size.
        target: the data file of on-disk lists, or None for lists in memory.
    """
    nlist, code_size = sources[0][0].nlist, sources[0][0].code_size
    sizes = np.array([sum(lists.list_size(i) for lists, _ in sources) for i in range(nlist)], dtype=np.uint64)
    if target is None:
        out = faiss.ArrayInvertedLists(nlist, code_size)
    else:
        target.unlink(missing_ok=True)
        out = faiss.OnDiskInvertedLists(nlist, code_size, str(target))
        out.set_all_lists_sizes(faiss.swig_ptr(sizes))
        with faiss_output_logged():
            out.update_totsize(int((sizes * np.uint64(code_size + 8)).sum()))
    for number in range(nlist):
        position = 0
        for lists, offset in sources:
            n = lists.list_size(number)
            if n == 0:
                continue
            ids = faiss.rev_swig_ptr(lists.get_ids(number), n).astype(np.int64) + offset
            codes = np.ascontiguousarray(faiss.rev_swig_ptr(lists.get_codes(number), n * code_size))
            if target is None:
                out.add_entries(number, n, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
            else:
                out.update_entries(number, position, n, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
            position += n
    return out


def merge_indexes(
    sources: Sequence[str | Path], out: str | Path, on_disk: bool | None = None, overwrite: bool = False
) -> dict:
    """Merge ``sources`` (in order) into a new index at ``out`` (atomic); returns a report.

    Args:
        on_disk: lists on disk (IVF only); default: on disk when any source is.

    Raises:
        ConfigMismatchError: the sources differ in configuration, factory or trained codec (keys named).
    """
    paths = [Path(p) for p in sources]
    out = Path(out)
    if len(paths) < 2:
        raise InputError(f"merging needs at least two indexes, got {len(paths)}")
    with replacing_index(out, overwrite):  # --overwrite replaces only an index, held locked meanwhile
        return _merge(paths, out, on_disk)


def _merge(paths: list[Path], out: Path, on_disk: bool | None) -> dict:
    opened = []
    try:
        opened.extend(SegmentIndex.open(path) for path in paths)  # read-only: sources may be read-only media
        first = opened[0]
        for other in opened[1:]:
            keys = merge_key_differences(first, other)
            if keys:
                raise ConfigMismatchError(
                    f"cannot merge {other.path} with {first.path}: they differ in {', '.join(keys)}",
                    hint="merge indexes built with the same backbone, weights, layer, stride, pooling and factory; "
                    "trained factories also need the same codec (build the others with --codec-from FIRST)",
                )
        on_disk = any(index.on_disk for index in opened) if on_disk is None else on_disk
        return _write(opened, out, on_disk)
    finally:
        for index in opened:
            index.close()


def _write(opened: list[SegmentIndex], out: Path, on_disk: bool) -> dict:
    first = opened[0]
    kind = kind_of(first.faiss_index)
    if on_disk and kind != "ivf":
        raise InputError(f"--on-disk needs an IVF factory, not {first.factory!r}")
    if kind == "serial":
        raise InputError(f"indexes of factory {first.factory!r} cannot be merged", hint="rebuild them as one index")
    started = time.perf_counter()
    counts = [index.ntotal for index in opened]
    starts = np.concatenate([[0], np.cumsum(counts)])
    with atomic_directory(out, final=True) as tmp:
        acquire_writer_lock(tmp).close()  # the lock file every index has (readers need not create it)
        (tmp / FAISS_DIR).mkdir()
        header = tmp / FAISS_DIR / faiss_name(1)
        trained = first.path / FAISS_DIR / TRAINED_NAME
        if trained.is_file():
            shutil.copyfile(trained, tmp / FAISS_DIR / TRAINED_NAME)
        if kind == "ivf":
            index = faiss.read_index(str(trained))
            ivf = faiss.extract_index_ivf(index)
            sources = [
                (faiss.extract_index_ivf(o.faiss_index).invlists, int(s)) for o, s in zip(opened, starts, strict=False)
            ]
            lists = copy_lists(sources, data_file(header) if on_disk else None)
            ivf.replace_invlists(lists, True)
            lists.this.disown()
            index.ntotal = ivf.ntotal = int(starts[-1])
        else:
            index = faiss.clone_index(first.faiss_index)
            for other in opened[1:]:
                index.merge_from(faiss.clone_index(other.faiss_index), 0)
        write_faiss(index, header)
        sources = [{"index": str(o.path), "segments": n} for o, n in zip(opened, counts, strict=True)]
        meta = new_meta(
            first.config,
            first.factory,
            first.dim,
            header.name,
            version=1,
            ntotal=int(starts[-1]),
            on_disk=on_disk,
            search_params=first.info()["search_params"],
            build={"merged_from": sources},
        )
        db = create_database(tmp / DB_NAME, meta)
        try:
            for index_, start in zip(opened, starts, strict=False):
                copy_rows(db, index_.path / DB_NAME, int(start), limit=index_.ntotal)
        finally:
            db.close()
        with SegmentIndex.open(tmp) as merged:
            index_bytes = merged.index_bytes()
    return {
        "index": str(out),
        "sources": [str(o.path) for o in opened],
        "segments": int(starts[-1]),
        "factory": first.factory,
        "on_disk": on_disk,
        "index_bytes": index_bytes,
        "seconds": round(time.perf_counter() - started, 2),
    }
