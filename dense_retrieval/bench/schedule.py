"""Running the matrix: plan the cells, share the units of work out across ranks, commit each cell.

One process, or every rank of a torchrun job (call :func:`run_bench` on each):

1. plan (main rank): for every cell, the run record of what would make its number (the backbone is built
   for it and the benchmark's inputs are checked: a bad checkpoint or data root is refused here, before
   anything is written). Then, holding DIR's lock: a cell whose ``cell.json`` is done with an equal record
   identity is skipped; any other is redone: its record removed, and a cell that splits into parts (DAVIS
   sequences) opens its outputs and lists the parts still to do. The plan is broadcast to every rank.
2. units: one per whole cell, one per part of a split cell, in (backbone, benchmark, part) order; rank r takes
   units r, r + world, ... A whole cell commits its ``cell.json`` on the rank that ran it; a part commits
   inside the cell's outputs. An error fails its cell only (one line, in the record); the others go on.
3. finish: every split cell is scored by one rank (round robin) once all ranks are done with the units,
   and committed. Then the main rank marks the run complete in ``bench.json``.

A killed run (any rank) keeps every committed cell and part; the next run redoes the rest. Results do not
depend on the number of ranks: every unit runs the same code on the same inputs, whichever rank runs it.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..backbone.weights.reuse import reuse_loaded_checkpoints
from ..data.outputs import check_output, locked, remove_owned
from ..distributed import Ranks
from ..errors import DenseRetrievalError
from ..interrupts import commit_section
from ..progress import track
from ..records import identity
from .cell import Cell
from .folder import (
    CELL,
    cell_folder,
    claim,
    keep_costs,
    read_cell,
    read_part_costs,
    write_bench,
    write_cell,
    write_part_cost,
)
from .registry import CellResult
from .spec import BenchSpec
from .usage import UnitOutcome, measured


@dataclass
class PlannedCell:
    """A cell as planned: where it lives, what makes it, and what is left to do (``parts`` None: one unit)."""

    row: int
    column: int
    folder: Path
    record: dict
    todo: bool
    parts: list[str] | None = None


@dataclass
class _Job:
    spec: BenchSpec
    out: Path
    ranks: Ranks
    log: Callable[[str], None]
    plan: list[PlannedCell] = field(default_factory=list)

    def cell(self, planned: PlannedCell) -> Cell:
        column = self.spec.benchmarks[planned.column]
        return Cell(
            self.spec.backbones[planned.row],
            column.name,
            column.benchmark,
            column.settings,
            planned.folder,
            self.spec.device,
            self.spec.batch_size,
            self.ranks,
            self.log,
            planned.record.get("run"),
        )

    def runner(self, planned: PlannedCell) -> ModuleType:
        return importlib.import_module(self.spec.benchmarks[planned.column].benchmark.runner)


def run_bench(
    spec: BenchSpec, out: str | Path, ranks: Ranks | None = None, log: Callable[[str], None] | None = None
) -> dict:
    """Run every cell of ``spec`` into the bench folder ``out`` (module docstring); call it on every rank.

    Returns:
        ``{"out", "ranks", "cells": [{"backbone", "benchmark", "ran"}, ...]}``: ``ran`` False for a cell kept
        from an earlier run. The numbers are in the cell records (:func:`~dense_retrieval.bench.report.load_matrix`).

    Raises:
        InputError: ``out`` touches an input, holds something else, or a backbone or data root is bad.
    """
    job = _Job(spec, Path(out), ranks or Ranks(), log or (lambda _line: None))
    with reuse_loaded_checkpoints(2), contextlib.ExitStack() as held:  # a row builds one backbone per protocol
        _start(job, held)
        units = [(i, part) for i, cell in enumerate(job.plan) if cell.todo for part in _parts(cell)]
        mine = [units[i] for i in job.ranks.mine(len(units))]
        if job.ranks.is_main:
            job.log(f"bench: {sum(c.todo for c in job.plan)} of {len(job.plan)} cell(s) to run, {len(units)} unit(s)")
        shown = track(mine, len(mine), "bench units", "unit") if job.ranks.is_main else mine  # one bar, rank 0's
        outcomes = [_run_unit(job, index, part) for index, part in shown]
        every = [outcome for share in job.ranks.gather_objects(outcomes) for outcome in share]
        split = [index for index, cell in enumerate(job.plan) if cell.todo and cell.parts is not None]
        for position in job.ranks.mine(len(split)):
            _finish(job, split[position], [o for o in every if o.cell == split[position]])
        job.ranks.barrier()
        if job.ranks.is_main:
            write_bench(job.out, spec.as_dict(), *_axes(spec), "complete", job.ranks.world)
    cells = [(spec.backbones[c.row].label, spec.benchmarks[c.column].name, c.todo) for c in job.plan]
    return {
        "out": str(job.out),
        "ranks": job.ranks.world,
        "cells": [{"backbone": row, "benchmark": column, "ran": ran} for row, column, ran in cells],
    }


def _start(job: _Job, held: contextlib.ExitStack) -> None:
    """Every rank: the output checked; the main rank plans (read-only), takes the folder and opens it; the plan is
    shared. An error on any rank stops every rank with that error."""
    error = None
    try:
        check_output(job.out, job.spec.inputs(), kind="dir")
    except Exception as caught:  # noqa: BLE001 - every rank stops with the same error
        error = caught
    job.ranks.agree(error)
    plan, error = None, None
    if job.ranks.is_main:
        try:
            plan = _plan(job)  # read-only: a refused run writes nothing
            job.out.mkdir(parents=True, exist_ok=True)
            held.enter_context(locked(job.out, "bench folder"))
            _open(job, plan)
        except Exception as caught:  # noqa: BLE001
            error = caught
    job.ranks.agree(error)
    job.plan = job.ranks.broadcast_object(plan)


def _parts(cell: PlannedCell) -> list[str | None]:
    """The units of a cell: its pending parts (maybe none: only the scoring is left), or the whole cell."""
    return [None] if cell.parts is None else list(cell.parts)


def _axes(spec: BenchSpec) -> tuple[list[dict], list[dict]]:
    rows = [vars(backbone) for backbone in spec.backbones]
    columns = [{"name": c.name, "kind": c.benchmark.name, "headline": c.benchmark.headline} for c in spec.benchmarks]
    return rows, columns


def _plan(job: _Job) -> list[PlannedCell]:
    """Main rank, before anything is written: the record of every cell (its backbone built, its inputs checked)."""
    claim(job.out)
    plan = []
    for row, backbone in enumerate(job.spec.backbones):  # by backbone: one network built at a time
        for column, benchmark in enumerate(job.spec.benchmarks):
            planned = PlannedCell(row, column, cell_folder(job.out, benchmark.name, backbone.label), {}, True)
            planned.record = {"benchmark": benchmark.benchmark.name, "settings": benchmark.settings}
            planned.record["run"] = job.runner(planned).record(job.cell(planned))
            plan.append(planned)
    return plan


def _open(job: _Job, plan: list[PlannedCell]) -> None:
    """Main rank, holding the folder: mark the run, keep the cells finished with the same record, open the rest."""
    claim(job.out)
    write_bench(job.out, job.spec.as_dict(), *_axes(job.spec), "running", job.ranks.world)
    for planned in plan:
        cell, runner = job.cell(planned), job.runner(planned)
        previous = _previous(planned.folder)
        if previous and previous["status"] == "done" and identity(previous["record"]) == identity(planned.record):
            planned.todo = False
            job.log(f"{cell.name}: finished earlier with the same record, kept")
            continue
        if (planned.folder / CELL).exists():
            remove_owned(planned.folder / CELL, job.out)  # stale: the cell is redone
        planned.folder.mkdir(parents=True, exist_ok=True)
        if hasattr(runner, "prepare"):
            planned.parts = list(runner.prepare(cell))
            keep_costs(planned.folder, planned.record)


def _previous(folder: Path) -> dict | None:
    try:
        return read_cell(folder)
    except DenseRetrievalError:
        return None  # an unreadable record: the cell is redone and its record replaced


def _run_unit(job: _Job, index: int, part: str | None) -> UnitOutcome:
    planned = job.plan[index]
    cell = job.cell(planned)
    runner = job.runner(planned)
    where = cell.name if part is None else f"{cell.name} [{part}]"
    job.log(f"[rank {job.ranks.rank}] {where}: running")
    error = None
    with measured() as usage:
        try:
            result = runner.run(cell) if part is None else runner.run_part(cell, part)
        except Exception as caught:  # noqa: BLE001 - a failed cell is recorded; the matrix goes on
            error = _one_line(caught, part)
    outcome = UnitOutcome(index, part, usage, error, job.ranks.rank)
    if part is None:
        _commit(job, planned, result if error is None else None, [outcome], error)
    elif error is None:
        write_part_cost(planned.folder, planned.record, part, usage, job.ranks.rank)
    job.log(f"[rank {job.ranks.rank}] {where}: {'failed: ' + error if error else 'done'} ({usage.seconds:.1f} s)")
    return outcome


def _finish(job: _Job, index: int, outcomes: list[UnitOutcome]) -> None:
    """Score a split cell once every part ran (or record the first part that failed).

    Its cost is that of every part committed under the same record, in this run or a killed earlier one
    (:func:`~.folder.read_part_costs`), plus the scoring; a failed cell's, what this run spent on it.
    """
    planned = job.plan[index]
    failed = next((o.error for o in outcomes if o.error), None)
    result, error = None, failed
    with measured() as usage:
        if failed is None:
            try:
                result = job.runner(planned).finish(job.cell(planned))
            except Exception as caught:  # noqa: BLE001
                error = _one_line(caught, None)
    finish = UnitOutcome(index, "finish", usage, error, job.ranks.rank)
    parts = outcomes if error else read_part_costs(planned.folder, planned.record)
    _commit(job, planned, result, [*parts, finish], error)


def _commit(job: _Job, planned: PlannedCell, result: CellResult | None, outcomes: list[UnitOutcome], error) -> None:
    """Write the cell's ``cell.json``: its record, scores or error, and what it cost."""
    column = job.spec.benchmarks[planned.column]
    peaks = [o.usage.peak_rss_mib for o in outcomes if o.usage.peak_rss_mib is not None]
    document: dict[str, Any] = {
        "backbone": vars(job.spec.backbones[planned.row]),
        "benchmark": column.name,
        "kind": column.benchmark.name,
        "record": planned.record,
        "status": "failed" if error else "done",
        "seconds": round(sum(o.usage.seconds for o in outcomes), 3),
        "peak_rss_mib": round(max(peaks), 1) if peaks else None,
        "peak_scope": outcomes[0].usage.peak_scope,
        "units": len(outcomes),
        "ranks": sorted({o.rank for o in outcomes}),
    }
    if error:
        document["error"] = error
    else:
        document["headline"] = {"metric": column.benchmark.headline, "value": result.headline}
        document.update(metrics=result.metrics, detail=result.detail, files=result.files)
    with commit_section():  # Ctrl-C waits for the record to be in place, then stops the run
        write_cell(planned.folder, document)


def _one_line(error: BaseException, part: str | None) -> str:
    text = str(error) if isinstance(error, DenseRetrievalError) else f"{type(error).__name__}: {error}"
    text = " ".join(text.split()) or type(error).__name__
    return f"{part}: {text}" if part else text
