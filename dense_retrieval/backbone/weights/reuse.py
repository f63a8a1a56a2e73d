"""Reading a weights file once for several builds of the same backbone (``bench run``), opt-in.

:func:`~.checkpoints.load_checkpoint` reads, checks (finite values, layout) and hashes a file on every call.
Within :func:`reuse_loaded_checkpoints` the last files read are kept and handed out again while unchanged
(same resolved path, size and modification time): one backbone built under several protocols reads its file
once. The kept tensors are only ever copied into models (``load_state_dict``), never changed. Outside the
block nothing is kept.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_KEEP = {"count": 0}
_KEPT: OrderedDict[tuple, object] = OrderedDict()


@contextlib.contextmanager
def reuse_loaded_checkpoints(count: int = 1) -> Iterator[None]:
    """Keep the last ``count`` checkpoint files read within the block (see the module docstring)."""
    previous = _KEEP["count"]
    _KEEP["count"] = max(previous, count)
    try:
        yield
    finally:
        _KEEP["count"] = previous
        while len(_KEPT) > previous:
            _KEPT.popitem(last=False)


def remembered(path: Path, load: Callable[[], T]) -> T:
    """``load()`` for the file ``path``, or what it returned before for the unchanged file when reuse is on."""
    key = _key(path)
    if key is None:
        return load()
    if key in _KEPT:
        _KEPT.move_to_end(key)
        return _KEPT[key]  # type: ignore[return-value]
    loaded = load()
    _KEPT[key] = loaded
    while len(_KEPT) > _KEEP["count"]:
        _KEPT.popitem(last=False)
    return loaded


def _key(path: Path) -> tuple | None:
    if not _KEEP["count"]:
        return None
    try:
        resolved = path.resolve()
        status = resolved.stat()
    except OSError:
        return None
    return (str(resolved), status.st_size, status.st_mtime_ns)
