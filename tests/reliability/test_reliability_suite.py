"""The reliability suite: every malformed or hostile input of the case tables, through the CLI.

Each case must be refused with exit code 2 and one line on stderr, leave its inputs byte-identical and
write nothing outside its --out (see :mod:`tests.reliability.cases`). The tables live in
``cases_*.py``, one per command family; cases that could crash or exhaust this process (segfaults in
native code, huge allocations) run in a child process and are marked ``slow``.
"""

from __future__ import annotations

import pytest

from tests.reliability import (
    cases_bench,
    cases_benchmarks,
    cases_davis,
    cases_features,
    cases_index,
    cases_other,
    cases_pretrain,
    cases_query,
    cases_scale,
    cases_video,
)
from tests.reliability.cases import check_case

ALL_CASES = [
    *cases_features.CASES,
    *cases_index.CASES,
    *cases_scale.CASES,
    *cases_query.CASES,
    *cases_davis.CASES,
    *cases_benchmarks.CASES,
    *cases_video.CASES,
    *cases_other.CASES,
    *cases_pretrain.CASES,
    *cases_bench.CASES,
]
MINIMUM_CASES = 150


@pytest.mark.parametrize("item", [pytest.param(c, id=c.id, marks=c.marks) for c in ALL_CASES])
def test_refused_cleanly(item, data, pristine, tmp_path):
    check_case(item, data, pristine, tmp_path)


def test_the_tables_cover_every_command():
    from typer.main import get_command

    from dense_retrieval.cli import app

    def commands(group, prefix=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from commands(command, (*prefix, name))
            else:
                yield " ".join((*prefix, name))

    every = set(commands(get_command(app)))
    covered = {c.command for c in ALL_CASES}
    assert every <= covered, f"commands without hostile cases: {sorted(every - covered)}"
    assert len(ALL_CASES) >= MINIMUM_CASES
    assert len({c.id for c in ALL_CASES}) == len(ALL_CASES), "case ids must be unique"
    for command in every:
        assert sum(c.command == command for c in ALL_CASES) >= 2, f"{command}: only one case"
