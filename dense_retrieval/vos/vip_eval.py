"""Score a VIP results folder with part mIoU, as CRW's eval_vip.py does (no torch needed).

Reads ``RESULTS/<video>/<frame>.png`` for every annotated frame of the list's videos against
``Category_ids/<video>/<frame>.png``, accumulates one confusion matrix over all of them (ground-truth
255 left out) and writes, into the output folder:

    parts_results-<list>.csv    one row per class (IoU, ground-truth pixels) and a ``mean`` row
    parts_report-<list>.json    what was scored and how, per video, the table, mIoU and pixel accuracy

A prediction of another size than its annotation is resized to it with nearest-neighbour sampling, as
CRW's script does (the report counts them). Scores are always recomputed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from .. import __version__
from ..data.davis_results import check_outputs, read_labels
from ..data.outputs import check_output
from ..data.score_files import json_number, write_score_files
from ..data.vip import CLASSES, VipDataset
from ..errors import DataFormatError, InputError
from ..metrics.conventions import PartConventions
from ..metrics.segmentation import ConfusionMeter, iou_from_confusion, mean_iou
from .results_run import select_names

CSV_NAME = "parts_results-{list}.csv"
REPORT_NAME = "parts_report-{list}.json"


@dataclass
class VipEvaluation:
    """The part mIoU of one results folder and what it was computed on."""

    root: Path
    results: Path
    list_path: Path
    conventions: PartConventions
    confusion: np.ndarray
    videos: list[dict]
    resized: int
    seconds: float

    @property
    def iou(self) -> np.ndarray:
        """IoU per class, float64 ``[num_classes]`` (NaN for a class absent everywhere, under ``absent="skip"``)."""
        return iou_from_confusion(self.confusion, self.conventions.absent)

    @property
    def miou(self) -> float:
        return mean_iou(self.iou)

    @property
    def pixel_accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else float("nan")

    def table(self) -> tuple[list[str], list[list]]:
        """The CSV table: one row per class, then ``mean``."""
        names = [*CLASSES, *(f"class-{i}" for i in range(len(CLASSES), self.conventions.num_classes))]
        truth = self.confusion.sum(axis=1)
        rows = [[names[c], float(self.iou[c]), int(truth[c])] for c in range(self.conventions.num_classes)]
        rows.append(["mean", self.miou, int(truth.sum())])
        return ["class", "IoU", "pixels"], rows

    def report(self, files: dict[str, Path] | None = None) -> dict:
        header, rows = self.table()
        return {
            "benchmark": "vip",
            "vip_root": str(self.root),
            "list": str(self.list_path),
            "results": str(self.results),
            "conventions": {
                **self.conventions.to_dict(),
                "confusion": "one matrix over every scored frame of every video; IoU = TP / (TP + FP + FN)",
                "resize": "predictions of another size are resized to the annotation, nearest-neighbour",
            },
            "miou": json_number(self.miou),
            "pixel_accuracy": json_number(self.pixel_accuracy),
            "per_class": [{"class": name, "IoU": json_number(iou), "pixels": n} for name, iou, n in rows[:-1]],
            "videos": self.videos,
            "num_videos": len(self.videos),
            "frames_scored": sum(v["frames_scored"] for v in self.videos),
            "predictions_resized": self.resized,
            "files": {key: str(path) for key, path in (files or {}).items()},
            "seconds": round(self.seconds, 3),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dense_retrieval": __version__,
        }


def evaluate_vip(
    dataset: VipDataset,
    results: str | Path,
    conventions: PartConventions = PartConventions(),
    videos: Sequence[str] | None = None,
) -> VipEvaluation:
    """Part mIoU of the predictions in ``results`` over the annotated frames of every (or the named) video.

    Raises:
        InputError: ``results`` is not a folder, or an unknown video name.
        DataFormatError: a prediction is missing, unreadable or holds an id past the classes (named).
    """
    started = time.perf_counter()
    results = Path(results)
    if not results.is_dir():
        raise InputError(f"results folder not found: {results}", hint="pass the --out of `vip propagate`")
    names = select_names(dataset.videos, videos, f"the VIP list {dataset.list_path}")
    total = np.zeros((conventions.num_classes, conventions.num_classes), dtype=np.int64)
    per_video, resized = [], 0
    for name in names:
        video = dataset.video(name)
        stems = video.annotated[1:] if conventions.skip_first else video.annotated
        meter = ConfusionMeter(conventions.num_classes, conventions.ignore_index)
        for stem in stems:
            truth = dataset.read_parts(video.annotations[stem], conventions.num_classes)
            predicted = _read_prediction(results / name / f"{stem}.png", conventions.num_classes)
            if predicted.shape != truth.shape:
                image = Image.fromarray(predicted).resize((truth.shape[1], truth.shape[0]), Image.Resampling.NEAREST)
                predicted, resized = np.asarray(image), resized + 1
            meter.update(predicted, truth)
        total += meter.confusion
        per_video.append({"video": name, "frames_scored": len(stems), "miou": json_number(meter.miou(absent="skip"))})
    seconds = time.perf_counter() - started
    return VipEvaluation(dataset.root, results, dataset.list_path, conventions, total, per_video, resized, seconds)


def output_paths(output: Path, list_path: Path) -> dict[str, Path]:
    """Where an evaluation of the list ``list_path`` writes: keys ``csv`` and ``report``."""
    stem = list_path.stem
    return {"csv": output / CSV_NAME.format(list=stem), "report": output / REPORT_NAME.format(list=stem)}


def run_vip_evaluation(
    dataset: VipDataset,
    results: str | Path,
    output: str | Path | None = None,
    conventions: PartConventions = PartConventions(),
    overwrite: bool = True,
    videos: Sequence[str] | None = None,
) -> tuple[VipEvaluation, dict[str, Path]]:
    """Evaluate and write the CSV table and the JSON report into ``output`` (default: ``results``).

    The files may not land in or over the dataset or the predictions; everything is checked first.
    """
    results = Path(results)
    paths = output_paths(Path(output) if output is not None else results, dataset.list_path)
    names = [n for n in (videos or dataset.videos) if n in dataset.videos]
    inputs = [*dataset.inputs(names), *(results / n for n in names)]
    for path in paths.values():
        check_output(path, inputs, "file", "--output")
    check_outputs(paths, overwrite)
    evaluation = evaluate_vip(dataset, results, conventions, videos)
    header, rows = evaluation.table()
    write_score_files({paths["csv"]: (header, rows)}, paths["report"], evaluation.report(paths))
    return evaluation, paths


def _read_prediction(path: Path, num_classes: int) -> np.ndarray:
    if not path.is_file():
        raise DataFormatError(
            f"no prediction {path}", hint="write one PNG of part ids per annotated frame (run `vip propagate`)"
        )
    labels = read_labels(path)
    if labels.max(initial=0) >= num_classes:
        raise DataFormatError(
            f"prediction {path} holds part id {int(labels.max())}; VIP has ids 0..{num_classes - 1}",
            hint="write part ids as an indexed or grayscale PNG",
        )
    return labels
