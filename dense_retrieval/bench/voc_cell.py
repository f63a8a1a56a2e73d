"""A VOC cell of the matrix: segment retrieval by the MaskContrast protocol (``retrieval/voc_protocol.py``).

One unit of work per cell:

    CELL/voc_report.json    the report of ``evaluate_voc`` (21- and 7-class mIoU, per-class IoU, counts)

Headline: the 21-class mIoU (background included; a class absent from both prediction and truth counts 0,
as the reference does); the 7-class mIoU and the mIoU over the classes present sit beside it.
"""

from __future__ import annotations

from dataclasses import asdict

from ..data.atomic import write_json
from ..data.voc import VocDataset
from ..protocols import MASKCONTRAST
from ..records import RunRecord
from ..retrieval.config import VocProtocol
from ..retrieval.proposals import ProposalConfig
from ..retrieval.voc_protocol import evaluate_voc
from .cell import Cell
from .registry import CellResult

REPORT = "voc_report.json"


def record(cell: Cell) -> dict:
    """What makes the cell's numbers: backbone as built, features, proposals, the protocol, the VOC root; the
    layout of both splits is checked first (bad input before any work)."""
    settings = cell.settings
    protocol = _protocol(cell)
    for split in (protocol.bank_split, protocol.query_split):
        VocDataset(settings["root"], split)
    extractor = _extractor(cell)
    return RunRecord.of(
        extractor.describe(), voc=asdict(protocol), proposals=_proposals(cell).describe(), root=settings["root"]
    ).as_dict()


def run(cell: Cell) -> CellResult:
    """Run the protocol, keep its report in the cell folder, return the 21-class mIoU and per-class IoU."""
    report = evaluate_voc(cell.settings["root"], _extractor(cell), _proposals(cell), _protocol(cell))
    write_json(cell.folder / REPORT, report)
    classes = report["classes_21"]
    return CellResult(
        headline=classes["miou"],
        metrics={"mIoU-7": report["classes_7"]["miou"], "mIoU (classes present)": classes["miou_present"]},
        detail=[{"item": name, "IoU": entry["iou"]} for name, entry in classes["per_class"].items()],
        files=[REPORT],
    )


def _protocol(cell: Cell) -> VocProtocol:
    settings = cell.settings
    keys = ("size", "top_k", "pooling", "max_images")
    return MASKCONTRAST.voc.replace(**{key: settings[key] for key in keys})


def _proposals(cell: Cell) -> ProposalConfig:
    settings = cell.settings
    return ProposalConfig(method=settings["proposals"], min_area=settings["min_area"], clusters=settings["clusters"])


def _extractor(cell: Cell):
    size = cell.settings["size"]
    return cell.extractor(MASKCONTRAST, resize=f"fixed:{size}x{size}")
