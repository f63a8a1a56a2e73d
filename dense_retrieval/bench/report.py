"""The report of a bench folder: one table with a row per backbone and the headline number per benchmark.

    REPORT/table.csv     the table, fractions at full precision (one row per backbone, one column per benchmark)
    REPORT/table.md      the table in percent as papers print it, what each cell cost, the records, the failures
    REPORT/details.csv   every number behind the table: per sequence / object / class, and each cell's metrics
    REPORT/cells.csv     one row per cell: status, headline, seconds, peak RSS, its record (cell.json), why it failed
    REPORT/report.png    a bar chart per benchmark; for pretraining runs, the metric against the epoch

The report reads only the records (``bench.json``, every ``cell.json``): it needs no torch, and it can be
written while a run is going (cells not finished yet show as pending). The report folder is replaced in one
step when complete (house rule 6).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.atomic import atomic_directory
from ..errors import DataFormatError
from .folder import BENCH, CELL, CELLS, cell_folder, read_bench, read_cell

FILES = ("table.csv", "table.md", "details.csv", "cells.csv", "report.png")


@dataclass
class CellView:
    """One cell as the report shows it: ``status`` is done, failed, pending (no record yet) or unreadable."""

    row: str
    column: str
    status: str
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    detail: list[dict[str, Any]] = field(default_factory=list)
    seconds: float | None = None
    peak_rss_mib: float | None = None
    units: int = 0
    ranks: list[int] = field(default_factory=list)
    error: str | None = None
    record: str = ""


@dataclass
class Matrix:
    """A bench folder read back: its rows (backbones), columns (benchmarks) and cells."""

    folder: Path
    status: str
    rows: list[dict[str, Any]]
    columns: list[dict[str, Any]]
    cells: dict[tuple[str, str], CellView]

    def cell(self, row: dict, column: dict) -> CellView:
        return self.cells[(row["label"], column["name"])]

    def counts(self) -> dict[str, int]:
        counts = {"done": 0, "failed": 0, "pending": 0, "unreadable": 0}
        for view in self.cells.values():
            counts[view.status] += 1
        return counts


def load_matrix(folder: str | Path) -> Matrix:
    """Read a bench folder's records.

    Raises:
        DataFormatError: the folder holds no ``bench.json`` of this tool.
    """
    folder = Path(folder)
    if not (folder / BENCH).is_file():
        raise DataFormatError(f"{folder} holds no {BENCH}", hint="pass the --out folder of `bench run`")
    bench = read_bench(folder / BENCH)
    cells = {}
    for row in bench["rows"]:
        for column in bench["columns"]:
            cells[(row["label"], column["name"])] = _view(folder, row["label"], column["name"])
    return Matrix(folder, str(bench.get("status")), bench["rows"], bench["columns"], cells)


def _view(folder: Path, row: str, column: str) -> CellView:
    where = cell_folder(folder, column, row)
    record = str(Path(CELLS) / column / row / CELL)
    try:
        document = read_cell(where)
    except DataFormatError as error:
        return CellView(row, column, "unreadable", error=str(error), record=record)
    if document is None:
        return CellView(row, column, "pending")
    view = CellView(
        row,
        column,
        document["status"],
        seconds=document["seconds"],
        peak_rss_mib=document["peak_rss_mib"],
        units=document.get("units", 0) if isinstance(document.get("units"), int) else 0,
        ranks=[r for r in document.get("ranks", []) if isinstance(r, int)],
        error=document.get("error"),
        record=record,
    )
    if view.status == "done":
        view.value = document["headline"]["value"]
        view.metrics = document["metrics"]
        view.detail = document["detail"]
    return view


# ------------------------------------------------------------------------------------------ tables
def table_rows(matrix: Matrix) -> list[list[str]]:
    """The headline table as text cells: a header, then one row per backbone (fractions, 4 decimals)."""
    header = ["backbone", *(f"{c['name']} {c['headline']}" for c in matrix.columns)]
    rows = [header]
    for row in matrix.rows:
        rows.append([row["label"], *(_fraction(matrix.cell(row, c)) for c in matrix.columns)])
    return rows


def render_text(matrix: Matrix) -> str:
    """The table for a terminal (percent, one decimal), each cell's cost, and one line per failure."""
    header = ["backbone", *(f"{c['name']} {c['headline']} (%)" for c in matrix.columns)]
    body = [[row["label"], *(_percent(matrix.cell(row, c)) for c in matrix.columns)] for row in matrix.rows]
    lines = _aligned([header, *body])
    costs = [["cell", "status", "seconds", "peak RSS MiB", "ranks"]]
    for row in matrix.rows:
        for column in matrix.columns:
            view = matrix.cell(row, column)
            costs.append([f"{row['label']} x {column['name']}", view.status, _seconds(view), _mib(view), _ranks(view)])
    lines += ["", *_aligned(costs)]
    lines += [f"{_name(view)}: {view.status}: {view.error}" for view in _failures(matrix)]
    return "\n".join(lines)


def render_markdown(matrix: Matrix) -> str:
    """``table.md``: the table in percent, the cost of each cell with its record, the failures."""
    header = ["backbone", *(f"{c['name']} {c['headline']}" for c in matrix.columns)]
    body = [[row["label"], *(_percent(matrix.cell(row, c)) for c in matrix.columns)] for row in matrix.rows]
    lines = [f"# Bench: {matrix.folder.name}", "", "Headline numbers in percent; fractions in table.csv.", ""]
    lines += _markdown([header, *body], numeric=len(matrix.columns))
    lines += ["", "## What each cell cost", ""]
    costs = [["cell", "status", "seconds", "peak RSS (MiB)", "ranks", "record"]]
    for row in matrix.rows:
        for column in matrix.columns:
            view = matrix.cell(row, column)
            record = f"`{view.record}`" if view.record else ""
            costs.append([_name(view), view.status, _seconds(view), _mib(view), _ranks(view), record])
    lines += _markdown(costs, numeric=0)
    failures = _failures(matrix)
    if failures:
        lines += ["", "## Failures", ""] + [f"- {_name(view)}: {view.error}" for view in failures]
    return "\n".join(lines) + "\n"


def details_rows(matrix: Matrix) -> list[list[str]]:
    """``details.csv``: backbone, benchmark, item, metric, value (every number behind the table)."""
    rows = [["backbone", "benchmark", "item", "metric", "value"]]
    for row in matrix.rows:
        for column in matrix.columns:
            view = matrix.cell(row, column)
            if view.status != "done":
                continue
            rows.append([row["label"], column["name"], "(all)", column["headline"], _number(view.value)])
            rows += [[row["label"], column["name"], "(all)", k, _number(v)] for k, v in view.metrics.items()]
            for entry in view.detail:
                for key, value in entry.items():
                    if key != "item":
                        rows.append([row["label"], column["name"], entry["item"], key, _number(value)])
    return rows


def cells_rows(matrix: Matrix) -> list[list[str]]:
    """``cells.csv``: one row per cell, with its cost, its record and, for a failure, why."""
    rows = [
        ["backbone", "benchmark", "status", "metric", "value", "seconds", "peak_rss_mib", "units", "record", "error"]
    ]
    for row in matrix.rows:
        for column in matrix.columns:
            view = matrix.cell(row, column)
            rows.append([
                row["label"], column["name"], view.status, column["headline"], _number(view.value),
                _number(view.seconds), _number(view.peak_rss_mib), str(view.units), view.record, view.error or "",
            ])  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------ files
def write_report(matrix: Matrix, out: str | Path) -> dict[str, str]:
    """Write the report files (module docstring) into ``out``, replacing an earlier report in one step.

    Returns:
        ``{file name: path}``.
    """
    out = Path(out)
    with atomic_directory(out) as folder:
        (folder / "table.csv").write_text(_csv(table_rows(matrix)), encoding="utf-8")
        (folder / "table.md").write_text(render_markdown(matrix), encoding="utf-8")
        (folder / "details.csv").write_text(_csv(details_rows(matrix)), encoding="utf-8")
        (folder / "cells.csv").write_text(_csv(cells_rows(matrix)), encoding="utf-8")
        _write_chart(matrix, folder / "report.png")
    return {name: str(out / name) for name in FILES}


def summary(matrix: Matrix) -> dict[str, Any]:
    """The report as one JSON document (``bench report --json``)."""
    cells = []
    for row in matrix.rows:
        for column in matrix.columns:
            view = matrix.cell(row, column)
            entry = {k: v for k, v in vars(view).items() if k not in ("detail",)}
            cells.append({**entry, "metric": column["headline"]})
    return {"folder": str(matrix.folder), "status": matrix.status, "counts": matrix.counts(), "cells": cells}


def _write_chart(matrix: Matrix, path: Path) -> None:
    from ..data.images import write_image
    from ..viz.charts import figure_to_rgb, matrix_chart

    columns = [(c["name"], c["headline"]) for c in matrix.columns]
    bars, curves = {}, {}
    for column in matrix.columns:
        runs: dict[str, list] = {}
        for row in matrix.rows:
            value = matrix.cell(row, column).value
            if row.get("run"):
                runs.setdefault(row["run"], []).append((row["epoch"], value))
        last = {run: max(points, key=lambda p: p[0]) for run, points in runs.items()}
        bars[column["name"]] = {
            row["label"]: matrix.cell(row, column).value
            for row in matrix.rows
            if not row.get("run") or last[row["run"]][0] == row["epoch"]
        }
        curves[column["name"]] = runs
    figure = matrix_chart(columns, bars, curves, title=f"bench {matrix.folder.name}")
    write_image(path, figure_to_rgb(figure))


# ------------------------------------------------------------------------------------------ formatting
def _failures(matrix: Matrix) -> list[CellView]:
    return [view for view in matrix.cells.values() if view.status in ("failed", "unreadable")]


def _name(view: CellView) -> str:
    return f"{view.row} x {view.column}"


def _fraction(view: CellView) -> str:
    return _number(view.value) if view.status == "done" else view.status


def _percent(view: CellView) -> str:
    if view.status != "done":
        return view.status
    return "nan" if view.value is None or math.isnan(view.value) else f"{100 * view.value:.1f}"


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return "nan" if math.isnan(value) else f"{value:.6g}" if abs(value) >= 1000 else f"{value:.4f}"


def _seconds(view: CellView) -> str:
    return "" if view.seconds is None else f"{view.seconds:.1f}"


def _mib(view: CellView) -> str:
    return "" if view.peak_rss_mib is None else f"{view.peak_rss_mib:.0f}"


def _ranks(view: CellView) -> str:
    return ",".join(map(str, view.ranks))


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def _markdown(rows: list[list[str]], numeric: int) -> list[str]:
    align = ["---"] * (len(rows[0]) - numeric) + ["---:"] * numeric
    escaped = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    return ["| " + " | ".join(escaped[0]) + " |", "| " + " | ".join(align) + " |"] + [
        "| " + " | ".join(row) + " |" for row in escaped[1:]
    ]
