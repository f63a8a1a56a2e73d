"""The case type of the reliability suite and the check every case goes through.

A case is one malformed or hostile invocation of one command. It runs in a fresh sandbox folder
(the working directory), after an optional ``setup`` that writes hostile files there. The check:

1. exit code 2, exactly one line on stderr (``error: ...``), no traceback, no Click usage block,
   nothing on stdout (:func:`~tests.reliability.harness.assert_one_line_error`);
2. the shared inputs (:class:`~tests.reliability.conftest.Data`) byte-identical to their first snapshot;
3. the sandbox byte-identical, except inside the command's ``--out`` when the case allows the output to
   change (``out_may_change``: a run that fails half-way may keep finished, resumable results; for
   ``index build`` these are the shards in its build folder ``.OUT.build`` beside ``--out``); an
   output that did not exist must not appear.

Arguments are templates: ``{d.images}`` (a shared input), ``{box}`` (the sandbox), ``{out}``
(``{box}/out``) and whatever ``setup`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.harness import (
    assert_one_line_error,
    can_drop_capabilities,
    make_writable,
    record,
    run_child,
    run_inprocess,
    snapshot,
    snapshot_diff,
)

Setup = Callable[[Path, object], dict | None]


@dataclass(frozen=True)
class Case:
    id: str
    command: str  # e.g. "index build": which command the case exercises (coverage is checked)
    args: tuple[str, ...]
    setup: Setup | None = None
    out: str | None = "{out}"  # what the command owns; None: it writes nothing
    out_may_change: bool = False
    contains: tuple[str, ...] = ()  # what the one line must mention (case-insensitive)
    child: bool = False  # run as a separate process (crashes, memory, C-level stderr)
    memory_mib: int | None = None  # address-space limit of the child
    read_only: bool = False  # needs a read-only folder that root cannot write either

    @property
    def marks(self) -> list:
        return [pytest.mark.slow] if self.child else []


def case(id: str, command: str, *args: object, **options) -> Case:
    """A case running ``dense-retrieval COMMAND ARGS...`` (``command`` may hold a group: "index build")."""
    return Case(id, command, (*command.split(), *(str(a) for a in args)), **options)


def check_case(item: Case, data, pristine: dict, tmp_path: Path) -> None:
    if item.read_only and not can_drop_capabilities():
        pytest.skip("cannot make a folder read-only for this user")
    box = tmp_path / "box"
    box.mkdir()
    extras = (item.setup(box, data) if item.setup else None) or {}
    values = {"d": data, "box": box, "out": box / "out", **extras}
    args = [arg.format(**values) for arg in item.args]
    out = Path(item.out.format(**values)) if item.out else None
    before = snapshot(box)
    outcome = None
    try:
        fence = [tmp_path]  # whatever the code under test does, it cannot delete or rename outside the case
        if item.child:
            outcome = run_child(
                args, cwd=box, memory_limit_mib=item.memory_mib, read_only_root=item.read_only, fence=fence
            )
        else:
            outcome = run_inprocess(args, cwd=box, fence=fence)
        after = snapshot(box)
        if item.read_only:
            make_writable(box)
        assert_one_line_error(outcome, contains=item.contains)
        changes = snapshot_diff(before, after)
        if out is not None and item.out_may_change:
            inside = Path(out.relative_to(box)) if out.is_relative_to(box) else None
            owned = [] if inside is None else [inside, inside.with_name(f".{inside.name}.build")]
            changes = [c for c in changes if inside is None or not any(_under(c.split(" ", 1)[1], o) for o in owned)]
        assert not changes, f"the refused run changed files: {changes[:8]}\n{outcome!r}"
        changed = snapshot_diff(pristine, snapshot(data.root))
        assert not changed, f"the refused run changed the shared inputs: {changed[:8]}\n{outcome!r}"
    except AssertionError as error:
        record(item.id, outcome, str(error).splitlines()[0])
        raise
    record(item.id, outcome, None)


def _under(relative: str, folder: Path) -> bool:
    path = Path(relative)
    return path == folder or folder in path.parents
