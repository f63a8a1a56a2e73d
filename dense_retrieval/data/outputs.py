"""The one guarded way to write, replace and delete outputs (docs/architecture.md, house rules 6 and 15).

Every command that writes checks its outputs against its inputs before any work, and every path the
toolkit deletes or replaces goes through here:

- :func:`check_output`: an output may never equal, contain or sit inside an input of the same command
  (paths resolved, symlinks included); the path must be writable as the kind it is (a file where a file
  goes, a folder where a folder goes), with a name the file system takes. All refused before any work.
- :func:`remove_owned`: deletes a path only if it lies inside the output that owns it (resolved).
- :func:`swap_directory`: puts a complete new folder in place of the old one in one atomic step
  (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames), and a fresh one only where nothing is.
- :func:`locked`: holds an output folder for the whole of a run (``flock`` on the folder itself): a
  second writer is refused at once instead of interleaving.
- :func:`clean_stale`: temporary siblings are named ``.<name>.<pid>.<random>.tmp`` (``.tmp.<ext>`` for files
  written through :func:`~.atomic.atomic_path`); those of processes that no longer run (a ``kill -9``) are
  removed by the next writer of the same output.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import InputError, OutputExistsError

NAME_MAX = 255
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]+\.(tmp|old)(\.\w+)?$")  # .tmp.json: atomic_path
_RENAME_EXCHANGE, _RENAME_NOREPLACE = 2, 1
_AT_FDCWD = -100


def resolved(path: str | os.PathLike) -> Path:
    """``path`` made absolute with every symlink of it resolved (the path need not exist)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def describe_path(path: str | os.PathLike) -> str:
    """A path for an error line: its text, with undecodable bytes shown as escapes."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return repr(os.fsencode(text))[1:]
    return text


def check_name(path: str | os.PathLike, what: str = "output") -> None:
    """A path the file system can hold: no NUL, each part at most 255 bytes, valid UTF-8."""
    text = os.fspath(path)
    if "\0" in text:
        raise InputError(f"{what} path {text!r} holds a NUL byte", hint="choose another name")
    for part in Path(text).parts:
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            raise InputError(
                f"{what} path {describe_path(text)} is not valid UTF-8", hint="rename it in plain UTF-8"
            ) from None
        if size > NAME_MAX:
            raise InputError(
                f"{what} name {part[:40]}... is {size} bytes long; the file system allows {NAME_MAX}",
                hint="choose a shorter name",
            )


def check_output(
    out: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    kind: str = "file",
    what: str = "--out",
) -> Path:
    """Refuse an output that would touch an input, or that cannot be written, before any work.

    Args:
        out: the file or folder the command writes.
        inputs: every file and folder the command reads (files it reads, folders it lists).
        kind: ``"file"`` or ``"dir"``: what ``out`` will be.
        what: the option's name, for messages.

    Returns:
        ``out`` resolved.

    Raises:
        InputError: ``out`` equals, contains or sits inside an input; a file stands where a folder must
            be (or the other way round); the name is too long or not UTF-8; the place is not writable.
    """
    check_name(out, what)
    target = resolved(out)
    for item in inputs:
        source = resolved(item)
        if target == source:
            raise InputError(f"{what} {out} is an input of this command ({item})", hint=f"choose another {what}")
        if source.is_relative_to(target):
            raise InputError(
                f"{what} {out} contains an input of this command ({item})", hint=f"choose a {what} outside the inputs"
            )
        if os.path.isdir(source) and target.is_relative_to(source):
            raise InputError(
                f"{what} {out} lies inside an input folder of this command ({item})",
                hint=f"choose a {what} outside the inputs",
            )
    if kind == "file" and target.is_dir():
        raise InputError(f"{what} {out} is a folder; a file goes there", hint=f"give a file name to {what}")
    if kind == "dir" and target.exists() and not target.is_dir():
        raise InputError(f"{what} {out} is a file; a folder goes there", hint=f"choose another {what}")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{what} {out}: {parent} is a file, not a folder", hint=f"choose another {what}")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise InputError(f"{what} {out} is not writable (read-only folder or file)", hint=f"choose another {what}")
    return target


def remove_owned(path: str | os.PathLike, owner: str | os.PathLike) -> None:
    """Delete ``path`` (file or folder) only if it lies strictly inside ``owner``, resolved.

    Raises:
        InputError: ``path`` resolves outside ``owner`` (a hostile name, ``..``, a symlink out), or to it.
    """
    root = resolved(owner)
    folder = resolved(Path(path).parent)  # the entry itself may be a symlink: that link is what goes
    entry = folder / Path(path).name
    if not entry.is_relative_to(root) or entry == root or Path(path).name in ("", ".", ".."):
        raise InputError(f"refusing to delete {path}: it is not inside the output {owner}", hint="check the record")
    if entry.is_symlink() or not entry.is_dir():
        entry.unlink(missing_ok=True)
    else:
        shutil.rmtree(entry)


def temporary_name(path: Path, suffix: str = "tmp") -> str:
    """``.<name>.<pid>.<random>.<suffix>``: recognisable, and dead owners can be told apart."""
    return f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.{suffix}"


def clean_stale(path: str | os.PathLike) -> list[str]:
    """Remove the temporary siblings of ``path`` whose process no longer runs; returns their names."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        match = _TEMP.match(entry.name)
        if match is None or match["name"] != path.name or _alive(int(match["pid"])):
            continue
        remove_owned(entry, path.parent)
        removed.append(entry.name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def swap_directory(new: Path, out: Path) -> Path | None:
    """Put the complete folder ``new`` at ``out`` in one step; returns where the old folder now is (or None).

    With an existing ``out`` the two are exchanged atomically (no moment without an index or a results
    folder at ``out``); the old one is then at ``new`` and the caller removes it. A missing ``out`` is
    created by a rename that refuses to replace anything that appeared meanwhile.

    Raises:
        OutputExistsError: something took ``out``'s place while the new folder was being made.
    """
    if out.exists() or out.is_symlink():
        if _renameat2(new, out, _RENAME_EXCHANGE):
            return new
        old = out.with_name(temporary_name(out, "old"))
        os.replace(out, old)  # no renameat2 (not Linux): two renames, old kept until the new is in place
        os.replace(new, out)
        return old
    if not _renameat2(new, out, _RENAME_NOREPLACE):
        try:
            os.rename(new, out)
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise OutputExistsError(f"{out} was created by another process meanwhile") from None
            raise
    return None


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """renameat2(2) through libc; False where it does not exist (then the caller falls back)."""
    function = getattr(_libc(), "renameat2", None)
    if function is None:
        return False
    result = function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    if code == errno.EEXIST:
        raise OutputExistsError(f"{target} was created by another process meanwhile")
    raise OSError(code, os.strerror(code), str(target))


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


_HELD_LOCKS: set[int] = set()


def _drop_held_locks_in_child() -> None:
    """A forked child (a data-loading worker, a scoring worker) closes its copies of the lock descriptors.

    The lock stays with the parent (flock belongs to the open file; closing one copy leaves it held), but it
    no longer outlives the parent in an orphaned child after a ``kill -9``.
    """
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_held_locks_in_child)


@contextlib.contextmanager
def locked(folder: str | os.PathLike, what: str = "output") -> Iterator[None]:
    """Hold ``folder`` for the whole block; another process holding it makes this raise at once.

    The lock is ``flock`` on the folder itself (no lock file), released when the block ends or the
    process dies (forked children do not keep it). It stays with the folder: a folder swapped out keeps
    its lock.

    Raises:
        InputError: another process holds the folder (it is being written).
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{what} {folder} is being written by another process", hint="wait for it to finish"
            ) from None
        _HELD_LOCKS.add(fd)
        yield
    finally:
        _HELD_LOCKS.discard(fd)
        os.close(fd)
