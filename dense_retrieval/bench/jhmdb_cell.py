"""A JHMDB cell of the matrix: keypoint propagation (``vos/jhmdb_run.py``) scored with PCK (``vos/jhmdb_eval.py``).

The cell's parts are the split's test videos, shared out across torchrun ranks like ``jhmdb propagate`` shares
them (:mod:`.propagation_cell`):

    CELL/results/    <video>/joints.json and propagation.json (a results folder of ``jhmdb propagate``)
    CELL/scores/     pck_results-split<N>.csv, pck_report-split<N>.json (as ``jhmdb evaluate`` writes them)

Headline: PCK@0.2, the mean over the 15 joints as CRW's eval_pck.py computes it (frame 0 left out, joints
without a prediction not scored); PCK@0.1 and the rest of the curve beside it, and a detail row per joint.
Protocol: the spec's ``preset`` on JHMDB (default ``crw``, meaning ``crw-jhmdb``: CRW's JHMDB settings, frames
stretched to 320x320) with its overrides, the keypoint encoding (sigma, readout_topk) and the backbone overrides.
"""

from __future__ import annotations

from ..data.jhmdb import JhmdbDataset
from ..propagation.config import KeypointConfig
from ..protocols import Protocol, benchmark_protocol
from ..records import RunRecord
from ..vos.jhmdb_eval import run_jhmdb_evaluation
from ..vos.jhmdb_run import check_video, jhmdb_record, joints_complete, propagate_jhmdb_video
from ..vos.results_run import commit_to
from .cell import Cell
from .propagation_cell import RESULTS, SCORES, collect_parts, open_parts, propagation_config
from .registry import CellResult

HEADLINE = "PCK@0.2"


def record(cell: Cell) -> dict:
    """What makes the cell's joints (backbone as built, features, propagation, keypoint encoding, JHMDB root and
    split); the split files and every test video's frames and joint file are checked first."""
    dataset = _dataset(cell)
    for name in dataset.videos:
        check_video(dataset, name)
    return _run_record(cell).as_dict()


def prepare(cell: Cell) -> list[str]:
    """Open the cell's results folder (resuming videos of the same record) and list the videos to propagate."""
    return open_parts(cell, _run_record, _dataset(cell).videos, joints_complete)


def run_part(cell: Cell, part: str) -> None:
    """Propagate video ``part``'s frame-0 joints into the cell's results folder and commit it (any rank)."""
    protocol = _protocol(cell)
    results = cell.folder / RESULTS
    config = propagation_config(cell, protocol)
    extractor = _extractor(cell, protocol)
    propagate_jhmdb_video(_dataset(cell), part, results, extractor, config, _keypoints(cell), commit=commit_to(results))


def finish(cell: Cell) -> CellResult:
    """Fold the ranks' commits into propagation.json and score the joints (PCK, CRW's conventions)."""
    results = collect_parts(cell)
    evaluation, files = run_jhmdb_evaluation(_dataset(cell), results, output=cell.folder / SCORES)
    scores = evaluation.scores
    curve = {f"PCK@{t:g}": float(value) for t, value in zip(scores.thresholds, scores.mean, strict=True)}
    header, rows = evaluation.table()  # joint, PCK@t ..., scored; the last row is the mean
    columns = header[1:-1]
    return CellResult(
        headline=curve[HEADLINE],
        metrics={key: value for key, value in curve.items() if key != HEADLINE},
        detail=[{"item": row[0], **dict(zip(columns, row[1:-1], strict=True))} for row in rows[:-1]],
        files=[str(path.relative_to(cell.folder)) for path in files.values()],
    )


def _dataset(cell: Cell) -> JhmdbDataset:
    settings = cell.settings
    return JhmdbDataset(settings["root"], settings["split"], settings["splits"])


def _protocol(cell: Cell) -> Protocol:
    return benchmark_protocol("jhmdb", cell.settings["preset"])


def _keypoints(cell: Cell) -> KeypointConfig:
    return KeypointConfig(sigma=cell.settings["sigma"], readout_topk=cell.settings["readout_topk"])


def _extractor(cell: Cell, protocol: Protocol):
    return cell.extractor(protocol, resize=cell.settings["resize"])


def _run_record(cell: Cell) -> RunRecord:
    protocol = _protocol(cell)
    keypoints = _keypoints(cell)  # checked before the network is built
    return jhmdb_record(_dataset(cell), _extractor(cell, protocol), propagation_config(cell, protocol), keypoints)
