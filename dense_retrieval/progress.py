"""Progress bars on stderr, silent unless a person is watching.

Rule (docs/architecture.md, house rule 7): progress goes to stderr and is shown only when stdout and
stderr are terminals and ``--json`` is not set. The CLI calls :func:`set_enabled`; library
code wraps long loops in :func:`track`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
_enabled: bool | None = None  # None: decide from the terminals


def set_enabled(enabled: bool | None) -> None:
    """Force progress bars on (True) or off (False); None restores the automatic choice."""
    global _enabled
    _enabled = enabled


def is_enabled() -> bool:
    if _enabled is not None:
        return _enabled
    return sys.stdout.isatty() and sys.stderr.isatty()


def track(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Iterate with a progress bar on stderr when enabled; a plain iteration otherwise."""
    if not is_enabled():
        yield from iterable
        return
    yield from tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)
