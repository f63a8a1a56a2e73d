"""What the label-propagation cells share (DAVIS, JHMDB, VIP): the spec's overrides of the protocol, and a
results folder of the road's own layout whose videos are the cell's parts, shared out across torchrun ranks.

    CELL/results/    a results folder as the road's `propagate` command writes it (vos/results_run.py): one
                     folder per video and propagation.json; each rank commits the videos it propagated
    CELL/scores/     the score files as the road's `evaluate` command writes them
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..propagation.config import PropagationConfig
from ..protocols import Protocol
from ..records import RunRecord
from ..vos.results_run import collect_results, open_results, pending_videos
from .cell import Cell

RESULTS = "results"
SCORES = "scores"
OVERRIDES = ("temperature", "topk", "radius", "context")
"""The spec keys that replace single fields of the protocol's :class:`PropagationConfig`."""


def propagation_config(cell: Cell, protocol: Protocol) -> PropagationConfig:
    """``protocol``'s propagation settings with the spec's overrides (radius 0: no window, as ``--radius 0``)."""
    changes = {key: cell.settings[key] for key in OVERRIDES if cell.settings.get(key) is not None}
    if changes.get("radius") == 0:
        changes["radius"] = None
    return protocol.propagation.replace(**changes)


def open_parts(
    cell: Cell, run_record: Callable[[Cell], RunRecord], names: Sequence[str], complete: Callable[[Path, dict], bool]
) -> list[str]:
    """Open the cell's results folder (resuming videos of the same record) and list the videos still to do.

    Args:
        cell: the cell (its planned record is reused when there is one).
        run_record: builds the cell's record when it was not planned.
        names: every video of the cell, in order.
        complete: ``complete(folder, entry)``: whether a recorded video's folder is whole.
    """
    results = cell.folder / RESULTS
    results.mkdir(parents=True, exist_ok=True)
    run = RunRecord.from_dict(cell.record, str(cell.folder)) if cell.record else run_record(cell)
    opened = open_results(results, run, overwrite=True)  # the bench owns the folder
    return pending_videos(results, opened, names, complete)


def collect_parts(cell: Cell) -> Path:
    """Fold every rank's commits into the results folder's propagation.json; returns the folder."""
    results = cell.folder / RESULTS
    collect_results(results)
    return results
