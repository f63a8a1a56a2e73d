"""A DAVIS cell of the matrix: label propagation (``vos/davis_run.py``) scored with J&F (``vos/davis_eval.py``).

The cell's parts are its sequences, shared out across torchrun ranks like ``davis propagate`` shares them:

    CELL/results/       the masks and propagation.json (a results folder of ``davis propagate``)
    CELL/scores/        global_results-<set>.csv, per-sequence_results-<set>.csv, evaluation_report-<set>.json

Protocol: the spec's ``preset`` (default: CRW, the paper's; DINO's for a vision transformer) with its
overrides (temperature, topk, radius, context) and the backbone overrides (layer, output_stride, stride_mode).
"""

from __future__ import annotations

from ..data.davis import DavisDataset
from ..propagation.config import PropagationConfig
from ..protocols import Protocol, default_propagation_protocol, get_protocol
from ..records import RunRecord
from ..vos.davis_eval import run_davis_evaluation
from ..vos.davis_run import check_sequence, propagate_davis_sequence, sequence_complete
from ..vos.frames import run_record
from ..vos.results_run import collect_results, commit_to, open_results, pending_videos
from .cell import Cell
from .registry import CellResult

RESULTS = "results"
SCORES = "scores"
_OVERRIDES = ("temperature", "topk", "radius", "context")


def record(cell: Cell) -> dict:
    """What makes the cell's masks (backbone as built, features, propagation, DAVIS root/year/resolution); the
    layout and every sequence's first frame and annotation are checked first (bad input before any work)."""
    dataset = _dataset(cell)
    for name in dataset.sequences:
        check_sequence(dataset, name)
    return _run_record(cell).as_dict()


def prepare(cell: Cell) -> list[str]:
    """Open the cell's results folder (resuming masks of the same record) and list the sequences to propagate."""
    dataset = _dataset(cell)
    results = cell.folder / RESULTS
    results.mkdir(parents=True, exist_ok=True)
    run = RunRecord.from_dict(cell.record, str(cell.folder)) if cell.record else _run_record(cell)
    opened = open_results(results, run, overwrite=True)  # the bench owns the folder
    return pending_videos(results, opened, dataset.sequences, sequence_complete)


def run_part(cell: Cell, part: str) -> None:
    """Propagate sequence ``part`` into the cell's results folder and commit it (any rank)."""
    protocol = _protocol(cell)
    extractor = cell.extractor(protocol)
    results = cell.folder / RESULTS
    propagate_davis_sequence(_dataset(cell), part, results, extractor, _config(cell, protocol), commit_to(results))


def finish(cell: Cell) -> CellResult:
    """Fold the ranks' commits into propagation.json and score the masks (J&F, the official tables)."""
    settings = cell.settings
    results = cell.folder / RESULTS
    collect_results(results)
    evaluation, files = run_davis_evaluation(
        settings["root"],
        results,
        output=cell.folder / SCORES,
        year=settings["year"],
        split=settings["split"],
        resolution=settings["resolution"],
        processes=1,
    )
    scores = evaluation.global_scores
    return CellResult(
        headline=scores["J&F-Mean"],
        metrics={key: value for key, value in scores.items() if key != "J&F-Mean"},
        detail=[{"item": name, "J-Mean": j, "F-Mean": f} for name, j, f in evaluation.per_object_table()],
        files=[str(path.relative_to(cell.folder)) for path in files.values()],
    )


def _dataset(cell: Cell) -> DavisDataset:
    settings = cell.settings
    return DavisDataset(settings["root"], settings["year"], settings["split"], settings["resolution"])


def _protocol(cell: Cell) -> Protocol:
    preset = cell.settings["preset"]
    return get_protocol(preset) if preset else default_propagation_protocol(cell.architecture())


def _config(cell: Cell, protocol: Protocol) -> PropagationConfig:
    changes = {key: cell.settings[key] for key in _OVERRIDES if cell.settings[key] is not None}
    if changes.get("radius") == 0:
        changes["radius"] = None  # 0: no window, as `davis propagate --radius 0`
    return protocol.propagation.replace(**changes)


def _run_record(cell: Cell) -> RunRecord:
    protocol = _protocol(cell)
    extractor = cell.extractor(protocol)
    dataset = _dataset(cell)
    davis = {"root": str(dataset.root.resolve()), "year": dataset.year, "resolution": dataset.resolution}
    return run_record(extractor, _config(cell, protocol), davis=davis, split=dataset.split)
