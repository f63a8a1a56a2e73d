"""Atomic writes: write to a temporary sibling, then ``os.replace`` (house rule 6).

An interrupted run leaves either the old file or the new one, never half of one. Temporary siblings are
named ``.<name>.<pid>.<random>.tmp[.ext]``; a later write of the same output removes those of processes
that are gone (a ``kill -9``), so nothing is left behind (:mod:`.outputs`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ..interrupts import commit_section
from .outputs import clean_stale, remove_owned, swap_directory

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    Use for writers that want a file name (``PIL.Image.save``, ``np.savez``, ``faiss.write_index``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Like ``open(path, mode)`` for writing, but the file appears only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def write_json(path: str | os.PathLike, document: Any) -> None:
    """Write ``document`` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike, then: Callable[[], None] | None = None, final: bool | None = None
) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` (a directory) when the block succeeds.

    The previous directory stays intact until the new one is complete; the two are then exchanged in
    one atomic step (:func:`~.outputs.swap_directory`), so ``path`` is never missing, and the old one
    is removed. Temporary folders of killed earlier runs next to ``path`` are removed first.

    Args:
        then: called right after the swap, as part of the same commit (e.g. recording the new folder).
        final: with a value, the swap and ``then`` run as one commit section
            (:func:`~dense_retrieval.interrupts.commit_section`): Ctrl-C waits for them to finish.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; give the folder the permissions mkdir would
    try:
        yield tmp
        section = commit_section(final) if final is not None else contextlib.nullcontext()
        with section:
            old = swap_directory(tmp, path)
            if then is not None:
                then()
            if old is not None:
                remove_owned(old, path.parent)
    finally:
        if tmp.exists() and not tmp.is_symlink():
            remove_owned(tmp, path.parent)
