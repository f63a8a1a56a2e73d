"""A fence for the reliability tests: no file operation of a test may delete, rename or create anything
outside the folders the test owns, whatever the code under test does.

The reliability cases feed hostile names and records to commands that delete and replace folders
(``../victim``, absolute paths, a record whose sequence list is a string, so that one "name" is ``/``).
Against code that does not guard its deletions such a case can reach anything the user can write. The
fence is a Python audit hook (PEP 578) on the events behind every deletion and rename in Python code
(``os.remove``, ``os.rmdir``, ``os.rename``, ``shutil.rmtree``, ``os.truncate``) that raises
``PermissionError`` for a path outside the allowed roots. The command under test then fails (the test
fails) instead of deleting. Roots: the test's own folders and single temporary files of the system
temp folder (libraries make and remove those).

In this process :func:`fenced` sets the roots for a block; in a child the roots come from
``$DENSE_RETRIEVAL_TEST_FENCE`` (``os.pathsep``-separated) and :func:`install_from_environment` runs
before the CLI (see ``fenced_cli.py`` and ``killpoint.py``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ENV = "DENSE_RETRIEVAL_TEST_FENCE"
_EVENTS = {"os.remove", "os.rmdir", "os.rename", "shutil.rmtree", "os.truncate"}
_roots: list[str] | None = None
_installed = False
_TEMP = os.path.realpath(tempfile.gettempdir())


def _real(path: object, dir_fd: object = None) -> str | None:
    if isinstance(path, int):
        return None  # an open file descriptor: no path to check
    try:
        text = os.fsdecode(path)
    except TypeError:
        return None
    if isinstance(dir_fd, int) and not os.path.isabs(text):  # shutil.rmtree works relative to folder fds
        text = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
    absolute = os.path.abspath(text)
    # resolve the folders, not the last component: unlinking a symlink removes the link, not its target
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))


def _allowed(path: str) -> bool:
    assert _roots is not None
    if any(path == root or path.startswith(root + os.sep) for root in _roots):
        return True
    return os.path.dirname(path) == _TEMP and os.path.basename(path) not in ("", ".", "..")


def _hook(event: str, args: tuple) -> None:
    if _roots is None or event not in _EVENTS:
        return
    if event == "os.rename":  # (src, dst, src_dir_fd, dst_dir_fd)
        paths = [(args[0], args[2] if len(args) > 2 else None), (args[1], args[3] if len(args) > 3 else None)]
    else:  # os.remove, os.rmdir: (path, dir_fd); shutil.rmtree: (path, dir_fd); os.truncate: (path, length)
        paths = [(args[0], args[1] if len(args) > 1 and event != "os.truncate" else None)]
    for path, dir_fd in paths:
        real = _real(path, dir_fd)
        if real is not None and not _allowed(real):
            raise PermissionError(f"test fence: {event} {real} is outside the test's folders {_roots}")


def _install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


@contextlib.contextmanager
def fenced(*roots: Path) -> Iterator[None]:
    """Within the block, this process may delete and rename only under ``roots``."""
    global _roots
    _install()
    previous = _roots
    _roots = [os.path.realpath(root) for root in roots]
    try:
        yield
    finally:
        _roots = previous


def environment(*roots: Path) -> dict[str, str]:
    """The environment variable that fences a child to ``roots``."""
    return {ENV: os.pathsep.join(os.path.realpath(root) for root in roots)}


def install_from_environment() -> None:
    global _roots
    value = os.environ.get(ENV)
    if value:
        _roots = value.split(os.pathsep)
        _install()
