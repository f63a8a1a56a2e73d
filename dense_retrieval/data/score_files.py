"""Score tables (CSV) and their JSON report, written all or nothing (JHMDB PCK, VIP part mIoU).

Every file is written to a temporary sibling first; they replace the previous files only once all are
complete, so an interrupted evaluation leaves the previous scores intact. Scores are always recomputed;
:func:`~.davis_results.check_outputs` refuses unwritable outputs before any work.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path

from .atomic import atomic_path


def write_score_files(tables: Mapping[Path, tuple[list[str], list[list]]], report_path: Path, report: Mapping) -> None:
    """Write CSV tables (``path -> (header, rows)``; floats as ``%.4f``) and a JSON report, all or nothing."""
    with contextlib.ExitStack() as stack:
        temporary = {path: stack.enter_context(atomic_path(path)) for path in (*tables, report_path)}
        for path, (header, rows) in tables.items():
            with open(temporary[path], "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(header)
                writer.writerows([_cell(value) for value in row] for row in rows)
        with open(temporary[report_path], "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, default=str, allow_nan=False)
            handle.write("\n")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)




def json_number(value: float) -> float | None:
    """``value`` as JSON can hold it: NaN and infinities (a class never seen, a joint never scored) become null."""
    return float(value) if math.isfinite(value) else None
