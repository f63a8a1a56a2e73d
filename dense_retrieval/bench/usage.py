"""What a unit of work costs: wall-clock seconds and the peak resident memory of the process while it ran.

On Linux the peak (``VmHWM`` in ``/proc/self/status``) is reset to the current resident size before each
unit by writing ``5`` to ``/proc/self/clear_refs`` (proc(5)), so the peak is the unit's own, including what
the process already held (the interpreter, torch, a network kept from the previous cell). Where that is
not possible the peak is the process's since it started (``getrusage``), and :attr:`Usage.peak_scope` says so.
"""

from __future__ import annotations

import contextlib
import re
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Usage:
    """Seconds and peak resident memory (MiB) of one unit; ``peak_scope`` is ``"unit"`` or ``"process"``."""

    seconds: float = 0.0
    peak_rss_mib: float | None = None
    peak_scope: str = "unit"


@dataclass
class UnitOutcome:
    """What one unit of work did: its cell (index in the plan), its part (None: the whole cell), its cost,
    its error (one line) if any, and the rank that ran it."""

    cell: int
    part: str | None
    usage: Usage
    error: str | None = None
    rank: int = 0


@contextlib.contextmanager
def measured() -> Iterator[Usage]:
    """Measure the block: ``with measured() as usage: ...``; ``usage`` is filled in when the block ends."""
    usage = Usage(peak_scope="unit" if _reset_peak() else "process")
    start = time.perf_counter()
    try:
        yield usage
    finally:
        usage.seconds = time.perf_counter() - start
        usage.peak_rss_mib = _peak_mib()


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _peak_mib() -> float:
    try:
        match = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return int(match.group(1)) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 1024)
