"""A VIP cell of the matrix: human-part propagation (``vos/vip_run.py``) scored with mIoU (``vos/vip_eval.py``).

The cell's parts are the list's videos, shared out across torchrun ranks like ``vip propagate`` shares them
(:mod:`.propagation_cell`):

    CELL/results/    <video>/<frame>.png for every annotated frame and propagation.json (as ``vip propagate``)
    CELL/scores/     parts_results-<list>.csv, parts_report-<list>.json (as ``vip evaluate`` writes them)

Headline: the part mIoU over 20 classes as CRW's eval_vip.py computes it (one confusion matrix over every
annotated frame, a class absent from both truth and prediction left out); pixel accuracy beside it, and a
detail row per class. Protocol: the spec's ``preset`` on VIP (default ``crw``, meaning ``crw-vip``: CRW's VIP
settings, frames stretched to 560x560) with its overrides and the backbone overrides.
"""

from __future__ import annotations

from ..data.vip import VipDataset
from ..protocols import Protocol, benchmark_protocol
from ..records import RunRecord
from ..vos.results_run import commit_to
from ..vos.vip_eval import run_vip_evaluation
from ..vos.vip_run import check_video, parts_complete, propagate_vip_video, vip_record
from .cell import Cell
from .propagation_cell import RESULTS, SCORES, collect_parts, open_parts, propagation_config
from .registry import CellResult


def record(cell: Cell) -> dict:
    """What makes the cell's part maps (backbone as built, features, propagation, VIP root and list, the
    read-out); the list and every video's frames and first annotation are checked first."""
    dataset = _dataset(cell)
    for name in dataset.videos:
        check_video(dataset, name)
    return _run_record(cell).as_dict()


def prepare(cell: Cell) -> list[str]:
    """Open the cell's results folder (resuming videos of the same record) and list the videos to propagate."""
    dataset = _dataset(cell)
    return open_parts(cell, _run_record, dataset.videos, parts_complete(dataset))


def run_part(cell: Cell, part: str) -> None:
    """Propagate video ``part``'s first annotation into the cell's results folder and commit it (any rank)."""
    protocol = _protocol(cell)
    results = cell.folder / RESULTS
    config = propagation_config(cell, protocol)
    propagate_vip_video(_dataset(cell), part, results, _extractor(cell, protocol), config, commit=commit_to(results))


def finish(cell: Cell) -> CellResult:
    """Fold the ranks' commits into propagation.json and score the part maps (mIoU, CRW's conventions)."""
    results = collect_parts(cell)
    evaluation, files = run_vip_evaluation(_dataset(cell), results, output=cell.folder / SCORES)
    _, rows = evaluation.table()  # class, IoU, pixels; the last row is the mean
    return CellResult(
        headline=evaluation.miou,
        metrics={"pixel accuracy": evaluation.pixel_accuracy},
        detail=[{"item": name, "IoU": iou} for name, iou, _ in rows[:-1]],  # NaN: a class absent everywhere
        files=[str(path.relative_to(cell.folder)) for path in files.values()],
    )


def _dataset(cell: Cell) -> VipDataset:
    return VipDataset(cell.settings["root"], cell.settings["list"])


def _protocol(cell: Cell) -> Protocol:
    return benchmark_protocol("vip", cell.settings["preset"])


def _extractor(cell: Cell, protocol: Protocol):
    return cell.extractor(protocol, resize=cell.settings["resize"])


def _run_record(cell: Cell) -> RunRecord:
    protocol = _protocol(cell)
    return vip_record(_dataset(cell), _extractor(cell, protocol), propagation_config(cell, protocol))
