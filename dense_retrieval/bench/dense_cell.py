"""A dense-retrieval cell of the matrix: the Hummingbird protocol (``retrieval/dense/evaluate.py``).

One unit of work per cell:

    CELL/memory/              the patch memory (FAISS index + label store; reused by a rerun of the same record)
    CELL/dense_report.json    the report of ``evaluate_dense`` (mIoU with and without matching, per-class IoU)

Headline: the mIoU over all classes after Hungarian matching (the published numbers' convention); the mIoU
without matching and over the classes present sit beside it.
"""

from __future__ import annotations

from ..data.atomic import write_json
from ..data.segmentation_sets import DEFAULT_SPLITS, open_split
from ..protocols import HUMMINGBIRD
from ..retrieval.dense.config import DenseProtocol
from ..retrieval.dense.evaluate import evaluate_dense, memory_record
from ..retrieval.index.stages import IndexOptions
from .cell import Cell
from .registry import CellResult

REPORT = "dense_report.json"
MEMORY = "memory"
_PROTOCOL_KEYS = ("memory_size", "augmentation_epochs", "neighbours", "temperature", "input_size", "matching", "seed")


def record(cell: Cell) -> dict:
    """What makes the cell's numbers: the memory's record (backbone as built, features, memory settings, the
    memory images, index options) and the query side; both splits are opened first (bad input before work)."""
    train, val = _splits(cell)
    extractor = cell.extractor(HUMMINGBIRD)
    protocol = _protocol(cell)
    return {
        **memory_record(extractor, protocol, train, _options(cell)),
        "queries": {**protocol.query_settings(), "val": val.describe()},
    }


def run(cell: Cell) -> CellResult:
    """Build (or reuse) the cell's memory, read the validation split from it, keep the report."""
    train, val = _splits(cell)
    protocol = _protocol(cell)
    report = evaluate_dense(
        train, val, cell.extractor(HUMMINGBIRD), protocol, cell.folder / MEMORY, _options(cell), overwrite=True
    )
    write_json(cell.folder / REPORT, report)
    return CellResult(
        headline=report["miou"],
        metrics={"mIoU (no matching)": report["miou_no_matching"], "mIoU (classes present)": report["miou_present"]},
        detail=[{"item": name, "IoU": entry["iou"]} for name, entry in report["per_class"].items()],
        files=[REPORT, MEMORY],
    )


def _splits(cell: Cell):
    settings = cell.settings
    defaults = DEFAULT_SPLITS[settings["dataset"]]
    classes = settings["num_classes"]
    train = open_split(
        settings["dataset"], settings["root"], settings["train_split"] or defaults[0], classes, settings["train_list"]
    )
    return train, open_split(settings["dataset"], settings["root"], settings["val_split"] or defaults[1], classes)


def _protocol(cell: Cell) -> DenseProtocol:
    chosen = {key: cell.settings[key] for key in _PROTOCOL_KEYS if cell.settings.get(key) is not None}
    if cell.settings.get("memory_size") == 0:  # 0 in a spec: every patch
        chosen["memory_size"] = None
    return HUMMINGBIRD.dense.replace(**chosen)


def _options(cell: Cell) -> IndexOptions:
    settings = cell.settings
    return IndexOptions(factory=settings["factory"], max_memory=settings["max_memory"], on_disk=settings["on_disk"])
