"""Commit points that cannot lie: Ctrl-C never splits a commit, and a command whose result is committed
reports success (docs/architecture.md, house rule 6).

A commit is a short sequence of steps that together make an output the new version (write the FAISS
file, rename it, commit the SQLite transaction; swap a finished folder in and record it).
:func:`commit_section` holds SIGINT for the duration of one: a Ctrl-C that arrives meanwhile is
delivered when the commit is complete.

- ``final=False`` (a step of a longer run, such as one DAVIS sequence): the held Ctrl-C is raised as
  KeyboardInterrupt right after the commit; the CLI then says "interrupted" and the finished part is kept.
- ``final=True`` (the command's result, such as the commit of ``index add``): from then on the command
  is done; a Ctrl-C held or arriving until the command ends no longer interrupts it, and the CLI prints
  the result and a note that the interrupt came after the commit.

Only the main thread handles signals; elsewhere the sections are plain blocks.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_state = {"committed": False, "interrupted": False}


def _hold(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    _state["interrupted"] = True


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def commit_section(final: bool = False) -> Iterator[None]:
    """Hold Ctrl-C while the block commits (see the module docstring)."""
    if not _main_thread() or _state["committed"]:
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    interrupted_before = _state["interrupted"]
    _state["interrupted"] = False
    signal.signal(signal.SIGINT, _hold)
    completed = False
    try:
        yield
        completed = True
    finally:
        if completed and final:
            _state["committed"] = True  # keep holding: the result stands whatever comes now
        else:
            signal.signal(signal.SIGINT, previous)
            held = _state["interrupted"]
            _state["interrupted"] = interrupted_before
            if completed and held:
                raise KeyboardInterrupt  # the commit is complete; now stop, as the user asked
    return


def interrupted_after_commit() -> bool:
    """True when the command's final commit is done and a Ctrl-C came after it (or during it)."""
    return _state["committed"] and _state["interrupted"]


def reset() -> None:
    """Start of a command: the default Ctrl-C behaviour, nothing committed yet."""
    _state["committed"] = False
    _state["interrupted"] = False
    if _main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
