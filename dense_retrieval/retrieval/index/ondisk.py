"""Inverted lists on disk: merge encoded shards into one memory-mapped ``.ivfdata`` file, read it back.

This is ``faiss.contrib.ondisk.merge_ondisk`` with three changes: the parts keep the *global* ids they
were encoded with (``merge_from_multiple(..., shift_ids=True)`` computes wrong offsets for parts of
unequal sizes in faiss 1.15: part i is shifted by the size of part i instead of part i - 1), what FAISS's
C code prints on stdout is captured and logged (shown with ``--verbose``; ``--json`` prints one document
on stdout and nothing else), and the FAISS header is written atomically.

An on-disk index is two files side by side: ``index-000001.faiss`` (quantizer, codec, list offsets and
the *name* of the data file) and ``index-000001.ivfdata`` (codes and ids of every list). The header
stores the data file's bare name (:func:`data_file_named_relative`), never the temporary folder it was
built in. It is read with ``IO_FLAG_ONDISK_SAME_DIR`` (the data file is looked up next to the header, so
the folder can be moved or copied) and ``IO_FLAG_READ_ONLY`` (mapped PROT_READ: readers can never write
it); FAISS announces that look-up on stdout at every load, which is why loads are captured too. Only the
pages of the lists a query visits are read, so an index larger than RAM is searchable.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss

READ_FLAGS = faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY
DATA_SUFFIX = ".ivfdata"
_log = logging.getLogger("dense_retrieval.faiss")


@contextlib.contextmanager
def faiss_output_logged() -> Iterator[None]:
    """Capture what FAISS's C code prints on stdout (fd 1) during the block; log it line by line (INFO).

    FAISS prints progress notes (``resizing ...``, ``IO_FLAG_ONDISK_SAME_DIR: updating ...``) with printf;
    they are log lines, shown with ``--verbose``, and must never reach stdout (``--json``) or, unasked,
    stderr.
    """
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 1)
        try:
            yield
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                _log.info("faiss: %s", line)


def _ondisk_lists(index: faiss.Index) -> faiss.OnDiskInvertedLists | None:
    """The on-disk inverted lists of an IVF index, or None for any other index."""
    if not is_ivf(index):
        return None
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    return lists if isinstance(lists, faiss.OnDiskInvertedLists) else None


@contextlib.contextmanager
def data_file_named_relative(index: faiss.Index) -> Iterator[None]:
    """While the block writes ``index``: its on-disk lists name their data file by its bare name.

    FAISS stores the data file's path in the header as it was at build time (the build's temporary
    folder); the bare name keeps a moved or copied index folder self-contained. Other indexes: no-op.
    """
    lists = _ondisk_lists(index)
    if lists is None:
        yield
        return
    built_at = lists.filename
    lists.filename = Path(built_at).name
    try:
        yield
    finally:
        lists.filename = built_at


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
    with faiss_output_logged():
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
