"""The output folder of ``retrieval eval-dense``: what it holds, how it is guarded, resumed and committed.

::

    OUT/
      memory/           the patch memory (unless --memory-out names another folder, or --memory an input)
      .memory.build/    its staging folder while it is built (kept after a failure or a kill: a rerun resumes)
      predictions/      predicted label PNGs, one per validation image (--save-predictions; swapped in whole)
      report.json       the report, written last

OUT is checked against every input before any work (house rule 15), created when missing, held locked
for the whole run (a second run on it is refused at once), and may hold nothing but these entries: a
folder with anything else is refused. A run that fails before anything finished leaves no OUT behind
if it created it. The memory is kept and reused by later runs whose settings make the same memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ...data.atomic import write_json
from ...data.outputs import check_output, locked, remove_owned
from ...distributed import Ranks
from ...errors import OutputExistsError
from ...interrupts import commit_section

REPORT = "report.json"
MEMORY = "memory"
PREDICTIONS = "predictions"
OWNED = {REPORT, MEMORY, PREDICTIONS, f".{MEMORY}.build"}


def check_run_folder(out: Path, inputs: Iterable[Path], memory_out: Path | None) -> None:
    """Refuse, before any work, an OUT (or a --memory-out) that touches an input or holds foreign files."""
    inputs = list(inputs)
    check_output(out, inputs, "dir")
    if memory_out is not None:
        check_output(memory_out, inputs, "dir", "--memory-out")
    if out.is_dir():
        foreign = sorted(
            entry.name for entry in out.iterdir() if entry.name not in OWNED and not _temporary(entry.name)
        )
        if foreign:
            raise OutputExistsError(
                f"--out {out} holds files that are not an eval-dense output ({', '.join(foreign[:3])})",
                hint="choose a new or empty folder",
            )


@contextlib.contextmanager
def run_folder(out: Path, ranks: Ranks) -> Iterable[Path]:
    """OUT created if missing and held locked (rank 0) for the block; removed again if the block fails and it
    was created here and holds nothing."""
    created = not out.exists()
    if ranks.is_main:
        out.mkdir(parents=True, exist_ok=True)
    ranks.barrier()
    try:
        with locked(out, "output folder") if ranks.is_main else contextlib.nullcontext():
            yield out
    except BaseException:
        if ranks.is_main and created and out.is_dir() and not any(out.iterdir()):
            remove_owned(out, out.parent)
        raise


def commit_report(out: Path, report: dict, log: Callable[[str], None]) -> Path:
    """Write OUT/report.json: the run's final commit (a Ctrl-C from now on leaves the result standing)."""
    path = out / REPORT
    with commit_section(final=True):
        write_json(path, report)
    log(f"report: {path}")
    return path


def default_memory(out: Path, memory_out: Path | None) -> Path:
    return memory_out if memory_out is not None else out / MEMORY


def _temporary(name: str) -> bool:
    """Temporary siblings of the owned entries (``.report.json.<pid>.<random>.tmp``, ``.predictions.<pid>...``)."""
    return (
        name.startswith(".")
        and name.endswith((".tmp", ".tmp.json", ".old"))
        and any(name.startswith(f".{owned}.") for owned in OWNED)
    )


def inputs_of(*paths: str | os.PathLike | None) -> list[Path]:
    return [Path(path) for path in paths if path is not None]
