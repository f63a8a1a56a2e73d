"""Score a JHMDB results folder with PCK, as CRW's eval_pck.py does (no torch needed).

Reads ``RESULTS/<video>/joints.json`` (:mod:`~..data.keypoint_results`) against the split's
``joint_positions.mat`` files and writes, into the output folder:

    pck_results-split<N>.csv    one row per joint and a ``mean`` row: PCK at every threshold, scored pairs
    pck_report-split<N>.json    what was scored and how, per video, the table, the headline numbers

Scores are always recomputed; the files replace earlier ones only once all are complete.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.davis_results import check_outputs
from ..data.jhmdb import JOINTS, JhmdbDataset
from ..data.keypoint_results import JOINTS_FILE, read_joints_file
from ..data.outputs import check_output
from ..data.score_files import json_number, write_score_files
from ..errors import InputError
from ..metrics.conventions import PCKConventions
from ..metrics.pck import PCKScores, normalised_errors, pck
from .results_run import select_names

CSV_NAME = "pck_results-split{split}.csv"
REPORT_NAME = "pck_report-split{split}.json"


@dataclass
class JhmdbEvaluation:
    """The PCK of one results folder and what it was computed on."""

    root: Path
    results: Path
    split: int
    conventions: PCKConventions
    scores: PCKScores
    videos: list[dict]
    seconds: float

    def table(self) -> tuple[list[str], list[list]]:
        """The CSV table: header and rows (one per joint, then ``mean``)."""
        header = ["joint", *(f"PCK@{t:g}" for t in self.scores.thresholds), "scored"]
        rows = [
            [JOINTS[j], *(float(v) for v in self.scores.per_joint[:, j]), int(self.scores.scored[j])]
            for j in range(len(JOINTS))
        ]
        rows.append(["mean", *(float(v) for v in self.scores.mean), int(self.scores.scored.sum())])
        return header, rows

    def headline(self) -> dict[str, float]:
        """``{"PCK@0.1": ..., "PCK@0.2": ...}``: the mean over joints at every threshold (fractions)."""
        return {f"PCK@{t:g}": json_number(v) for t, v in zip(self.scores.thresholds, self.scores.mean, strict=True)}

    def report(self, files: dict[str, Path] | None = None) -> dict:
        header, rows = self.table()
        return {
            "benchmark": "jhmdb",
            "jhmdb_root": str(self.root),
            "split": self.split,
            "results": str(self.results),
            "conventions": {
                **self.conventions.to_dict(),
                "normaliser": f"{self.conventions.box_scale} x the diagonal of the box around the frame's scored "
                "ground-truth joints",
                "mean": "the mean over joints of the per-joint PCK (CRW's eval_pck.py)",
            },
            "pck": self.headline(),
            "per_joint": [
                {key: json_number(v) if isinstance(v, float) else v for key, v in zip(header, row, strict=True)}
                for row in rows
            ],
            "videos": self.videos,
            "num_videos": len(self.videos),
            "frames_scored": sum(v["frames_scored"] for v in self.videos),
            "files": {key: str(path) for key, path in (files or {}).items()},
            "seconds": round(self.seconds, 3),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dense_retrieval": __version__,
        }


def evaluate_jhmdb(
    dataset: JhmdbDataset,
    results: str | Path,
    conventions: PCKConventions = PCKConventions(),
    videos: Sequence[str] | None = None,
) -> JhmdbEvaluation:
    """PCK of the predictions in ``results`` for every (or the named) test video of ``dataset``.

    A video whose predictions and ground truth differ in length is scored on the frames both have
    (and the report says so).

    Raises:
        InputError: ``results`` is not a folder, or an unknown video name.
        DataFormatError: a video's predictions are missing or malformed (named).
    """
    started = time.perf_counter()
    results = Path(results)
    if not results.is_dir():
        raise InputError(f"results folder not found: {results}", hint="pass the --out of `jhmdb propagate`")
    names = select_names(dataset.videos, videos, f"the test videos of JHMDB split {dataset.split}")
    errors, per_video = [], []
    for name in names:
        truth = dataset.joints(name)
        predicted = read_joints_file(results / name / JOINTS_FILE, len(JOINTS))
        frames = min(len(truth), len(predicted))
        video_errors = normalised_errors(predicted[:frames], truth[:frames], conventions)
        errors.append(video_errors)
        scored = ~np.isnan(video_errors)
        per_video.append(
            {
                "video": name,
                "action": dataset.action(name),
                "frames_truth": len(truth),
                "frames_predicted": len(predicted),
                "frames_scored": int(scored.any(axis=1).sum()),
                **{
                    f"PCK@{t:g}": float((video_errors[scored] <= t).mean()) if scored.any() else None
                    for t in conventions.thresholds
                },
            }
        )
    scores = pck(errors, conventions.thresholds)
    return JhmdbEvaluation(
        dataset.root, results, dataset.split, conventions, scores, per_video, time.perf_counter() - started
    )


def output_paths(output: Path, split: int) -> dict[str, Path]:
    """Where an evaluation of ``split`` writes: keys ``csv`` and ``report``."""
    return {"csv": output / CSV_NAME.format(split=split), "report": output / REPORT_NAME.format(split=split)}


def run_jhmdb_evaluation(
    dataset: JhmdbDataset,
    results: str | Path,
    output: str | Path | None = None,
    conventions: PCKConventions = PCKConventions(),
    overwrite: bool = True,
    videos: Sequence[str] | None = None,
) -> tuple[JhmdbEvaluation, dict[str, Path]]:
    """Evaluate and write the CSV table and the JSON report into ``output`` (default: ``results``).

    The files may not land in or over the dataset or the predictions; everything is checked first.
    """
    results = Path(results)
    paths = output_paths(Path(output) if output is not None else results, dataset.split)
    names = list(videos) if videos else dataset.videos
    inputs = [*dataset.inputs([n for n in names if n in dataset.videos]), *(results / n for n in names)]
    for path in paths.values():
        check_output(path, inputs, "file", "--output")
    check_outputs(paths, overwrite)
    evaluation = evaluate_jhmdb(dataset, results, conventions, videos)
    header, rows = evaluation.table()
    write_score_files({paths["csv"]: (header, rows)}, paths["report"], evaluation.report(paths))
    return evaluation, paths
