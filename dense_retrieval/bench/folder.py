"""The bench folder and its records: what ``bench run`` writes and ``bench report`` reads.

    DIR/bench.json                         the matrix: the checked spec, its rows and columns, the run's status
    DIR/cells/<column>/<row>/cell.json     one cell's record: what made the number (the run record), the
                                           headline, metrics and detail rows, or why it failed; seconds, peak RSS
    DIR/cells/<column>/<row>/costs/<part>.json   what each committed part of a split cell cost, and under which
                                           record (a resumed cell adds the parts of the killed run)
    DIR/cells/<column>/<row>/...           the benchmark's own outputs (DAVIS masks and score tables, VOC report)
    DIR/report/                            ``bench report``'s tables and figure (default place)

Output rules (house rule 15): DIR is new, empty, or an earlier bench run's (it holds a ``bench.json`` of
this tool); anything else is refused. ``cell.json`` is written last, atomically: it is the cell's commit,
and a cell counts as finished only while its record's identity equals the one the spec asks for now.
Everything read back is checked against its schema before it is used.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from .. import __version__
from ..data.atomic import write_json
from ..data.outputs import remove_owned
from ..errors import DataFormatError, OutputExistsError
from ..records import check_entry_name, identity
from .usage import UnitOutcome, Usage

BENCH = "bench.json"
CELL = "cell.json"
CELLS = "cells"
COSTS = "costs"
REPORT = "report"
STATUSES = ("done", "failed")


def cell_folder(out: Path, column: str, row: str) -> Path:
    """The folder of the cell ``row`` x ``column`` (both plain names, checked by the spec)."""
    return out / CELLS / column / row


def claim(out: Path) -> dict | None:
    """Check that ``out`` may hold this bench run; returns its previous ``bench.json`` (None when new).

    Raises:
        OutputExistsError: ``out`` holds other files and no bench record.
        DataFormatError: ``out/bench.json`` is not a bench record of this tool.
    """
    record = out / BENCH
    if record.is_file():
        return read_bench(record)
    if out.is_dir() and any(not entry.name.startswith(".") for entry in out.iterdir()):
        raise OutputExistsError(
            f"{out} is not empty and holds no {BENCH}", hint="choose a new or empty --out, or an earlier bench folder"
        )
    return None


def write_bench(out: Path, spec: dict, rows: list[dict], columns: list[dict], status: str, ranks: int) -> None:
    """Write ``bench.json`` (atomic)."""
    document = {
        "tool": f"dense-retrieval {__version__}",
        "kind": "bench",
        "status": status,
        "ranks": ranks,
        "spec": spec,
        "rows": rows,
        "columns": columns,
    }
    write_json(out / BENCH, document)


def read_bench(path: Path) -> dict:
    """A ``bench.json`` read back and checked (rows and columns are plain names: they become paths).

    Raises:
        DataFormatError: not a bench record of this tool.
    """
    document = _read_json(path, "a bench record")
    if not isinstance(document, dict) or document.get("kind") != "bench":
        raise DataFormatError(f"{path} is not a bench record", hint="choose another folder")
    for key in ("rows", "columns"):
        entries = document.get(key)
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise DataFormatError(f"{path}: {key!r} is not a list of objects", hint="rerun `bench run`")
        for entry in entries:
            check_entry_name(entry.get("label" if key == "rows" else "name"), str(path))
    for column in document["columns"]:
        if not isinstance(column.get("headline"), str) or not isinstance(column.get("kind"), str):
            raise DataFormatError(f"{path}: a column lacks its kind or headline", hint="rerun `bench run`")
    return document


def write_cell(folder: Path, document: dict) -> None:
    """Commit a cell: its ``cell.json`` (atomic; written after every other output of the cell)."""
    write_json(folder / CELL, {"tool": f"dense-retrieval {__version__}", **document})


def read_cell(folder: Path) -> dict | None:
    """The cell's record, checked; None when there is none.

    Schema: ``status`` "done" (with ``headline`` {"metric": str, "value": number}, ``metrics`` {str: number},
    ``detail`` [{"item": str, ...numbers}]) or "failed" (with ``error`` str); ``record`` an object;
    ``seconds`` a number >= 0; ``peak_rss_mib`` a number >= 0 or null.

    Raises:
        DataFormatError: the file exists but does not fit, named.
    """
    path = folder / CELL
    if not path.is_file():
        return None
    document = _read_json(path, "a cell record")
    where = str(path)
    if not isinstance(document, dict) or document.get("status") not in STATUSES:
        raise DataFormatError(f"{where} is not a cell record (no status)", hint="rerun `bench run` to redo the cell")
    if not isinstance(document.get("record"), dict):
        raise DataFormatError(f"{where}: 'record' is not an object", hint="rerun `bench run` to redo the cell")
    if not _number(document.get("seconds"), low=0) or not _number(document.get("peak_rss_mib"), low=0, null=True):
        raise DataFormatError(f"{where}: seconds or peak_rss_mib is not a number >= 0", hint="rerun `bench run`")
    if document["status"] == "failed":
        if not isinstance(document.get("error"), str):
            raise DataFormatError(f"{where}: a failed cell without its error", hint="rerun `bench run`")
        return document
    headline = document.get("headline")
    if not isinstance(headline, dict) or not _number(headline.get("value"), nan=True):
        raise DataFormatError(f"{where}: 'headline' is not {{metric, value}}", hint="rerun `bench run`")
    metrics = document.get("metrics")
    if not isinstance(metrics, dict) or not all(_number(v, nan=True) for v in metrics.values()):
        raise DataFormatError(f"{where}: 'metrics' is not an object of numbers", hint="rerun `bench run`")
    detail = document.get("detail")
    if not isinstance(detail, list) or not all(_detail_row(row) for row in detail):
        raise DataFormatError(f"{where}: 'detail' is not a list of rows", hint="rerun `bench run`")
    return document


def record_key(record: dict) -> str:
    """A short digest of a record's identity: what cost files are filed under."""
    text = json.dumps(identity(record), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def write_part_cost(folder: Path, record: dict, part: str, usage: Usage, rank: int) -> None:
    """File what part ``part`` of the cell cost, under the cell's record (atomic)."""
    entry = {"record": record_key(record), "rank": rank, **vars(usage)}
    write_json(folder / COSTS / f"{check_entry_name(part, str(folder))}.json", entry)


def read_part_costs(folder: Path, record: dict) -> list[UnitOutcome]:
    """The costs of the parts committed under ``record`` (others, and unreadable files, are left out)."""
    key, found = record_key(record), []
    costs = folder / COSTS
    for path in sorted(costs.glob("*.json")) if costs.is_dir() else []:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(entry, dict) or entry.get("record") != key or not _number(entry.get("seconds"), low=0):
            continue
        peak = entry.get("peak_rss_mib") if _number(entry.get("peak_rss_mib"), low=0) else None
        scope = entry.get("peak_scope") if entry.get("peak_scope") in ("unit", "process") else "process"
        rank = entry.get("rank") if isinstance(entry.get("rank"), int) else 0
        found.append(UnitOutcome(-1, path.stem, Usage(entry["seconds"], peak, scope), None, rank))
    return found


def keep_costs(folder: Path, record: dict) -> None:
    """Remove the cost files of parts made under another record (the cell is redone from scratch)."""
    costs, key = folder / COSTS, record_key(record)
    for path in sorted(costs.iterdir()) if costs.is_dir() and not costs.is_symlink() else []:
        try:
            stale = json.loads(path.read_text(encoding="utf-8")).get("record") != key
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, AttributeError):
            stale = True
        if stale:
            remove_owned(path, folder)


def _detail_row(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and isinstance(row.get("item"), str)
        and all(_number(value, nan=True, null=True) for key, value in row.items() if key != "item")
    )


def _number(value: Any, low: float | None = None, nan: bool = False, null: bool = False) -> bool:
    if value is None:
        return null
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if math.isnan(value):
        return nan
    return math.isfinite(value) and (low is None or value >= low)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise DataFormatError(f"{path} is not {what} (not JSON)", hint="remove it or choose another folder") from None
