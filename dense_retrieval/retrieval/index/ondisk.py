"""Inverted lists on disk: merge encoded shards into one memory-mapped ``.ivfdata`` file, read it back.

This is ``faiss.contrib.ondisk.merge_ondisk`` with three changes: the parts keep the *global* ids they
were encoded with (``merge_from_multiple(..., shift_ids=True)`` computes wrong offsets for parts of
unequal sizes in faiss 1.15: part i is shifted by the size of part i instead of part i - 1), FAISS's
``printf`` to stdout is sent to stderr (``--json`` prints one document on stdout), and the FAISS header
is written atomically.

An on-disk index is two files side by side: ``index-000001.faiss`` (quantizer, codec, list offsets and
the *name* of the data file) and ``index-000001.ivfdata`` (codes and ids of every list). It is read
with ``IO_FLAG_ONDISK_SAME_DIR`` (the data file is looked up next to the header, so the folder can be
moved) and ``IO_FLAG_READ_ONLY`` (mapped PROT_READ: readers can never write it). Only the pages of the
lists a query visits are read, so an index larger than RAM is searchable.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss

READ_FLAGS = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY
DATA_SUFFIX = ".ivfdata"


@contextlib.contextmanager
def faiss_stdout_to_stderr() -> Iterator[None]:
    """Send what FAISS's C code prints on stdout (fd 1) to stderr for the duration of the block."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


def is_ivf(index: faiss.Index) -> bool:
    """True for inverted-file indexes (possibly behind a pre-transform such as OPQ)."""
    try:
        faiss.extract_index_ivf(index)
    except RuntimeError:
        return False
    return True


def data_file(header: Path) -> Path:
    """The ``.ivfdata`` file that belongs to an on-disk header file."""
    return header.with_suffix(DATA_SUFFIX)


def read_ondisk(header: Path) -> faiss.Index:
    """Open an on-disk index read-only; its lists stay on disk (mapped), the rest is loaded."""
    with faiss_stdout_to_stderr():
        return faiss.read_index(str(header), READ_FLAGS)


def merge_to_disk(trained: faiss.Index, parts: Sequence[faiss.Index], header: Path) -> int:
    """Write the lists of ``parts`` into ``header``'s data file; returns ntotal. The caller writes ``trained``
    (now pointing at the data file) to ``header``.

    Args:
        trained: the trained, empty index every part was encoded with (consumed: its lists are replaced).
        parts: IVF indexes whose lists hold codes with global ids (opened with ``IO_FLAG_MMAP`` they are
            read from disk, not loaded); lists are concatenated in this order.
        header: the FAISS file to write; the data file goes next to it (:func:`data_file`).
    """
    ivf = faiss.extract_index_ivf(trained)
    if trained.ntotal != 0:
        raise ValueError("merge_to_disk needs an empty trained index")
    lists = faiss.InvertedListsPtrVector()
    for part in parts:
        lists.push_back(faiss.extract_index_ivf(part).invlists)
    target = data_file(header)
    target.unlink(missing_ok=True)  # a leftover of a killed attempt: OnDiskInvertedLists needs an empty file
    with faiss_stdout_to_stderr():
        ondisk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(target))
        ntotal = ondisk.merge_from_multiple(lists.data(), lists.size(), False)
    ivf.replace_invlists(ondisk, True)
    ondisk.this.disown()
    trained.ntotal = ivf.ntotal = ntotal
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())
    return int(ntotal)


def read_part(path: Path) -> faiss.Index:
    """An encoded part with its lists mapped from disk rather than loaded (``IO_FLAG_MMAP``)."""
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
