"""Score a DAVIS results folder with J&F, as the official semi-supervised evaluation does, only faster.

Reads ``RESULTS/<sequence>/<frame>.png`` against a :class:`~.data.davis.DavisDataset` (2017: indexed
multi-object annotations; 2016: one object stored as 0/255), scores each annotated frame but the
first and the last, and aggregates the official per-object and global tables
(davisvideochallenge/davis2017-evaluation). Every PNG is decoded once; frames are scored in chunks on
``processes`` worker processes. All inputs are checked before anything is written, and results are
always recomputed (never read back from an earlier run).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.davis import DavisDataset
from ..data.davis_results import (
    check_outputs,
    find_result_frames,
    output_paths,
    read_labels,
    read_result_mask,
    write_evaluation_files,
)
from ..errors import DataFormatError, InputError
from ..labels import VOID
from ..metrics.boundary import dilation_radius
from ..metrics.jf import JFConventions, ObjectScores, global_scores, object_scores, score_frame
from ..progress import track

CHUNK_FRAMES = 16


@dataclass(frozen=True)
class SequenceInfo:
    """What was scored in one sequence."""

    name: str
    num_objects: int
    frames: int  # annotated frames
    frames_scored: int
    height: int
    width: int
    dilation_radius: float


@dataclass
class DavisEvaluation:
    """The scores of one results folder: per object (per frame and statistics) and global."""

    davis_root: Path
    results: Path
    year: str
    split: str
    resolution: str
    conventions: JFConventions
    sequences: list[SequenceInfo]
    objects: list[ObjectScores]
    global_scores: dict[str, float]
    seconds: float
    processes: int

    @property
    def frames_scored(self) -> int:
        return sum(info.frames_scored for info in self.sequences)

    def per_object_table(self) -> list[tuple[str, float, float]]:
        """Rows of the official per-sequence table: (``seq_k``, J-Mean, F-Mean)."""
        return [(obj.name, obj.j_stats.mean, obj.f_stats.mean) for obj in self.objects]

    def report(self, files: dict[str, Path] | None = None) -> dict:
        """A JSON-ready record of what was scored, how, and the scores."""
        return {
            "task": "semi-supervised",
            "davis_root": str(self.davis_root),
            "year": self.year,
            "set": self.split,
            "resolution": self.resolution,
            "results": str(self.results),
            "conventions": {
                **self.conventions.to_dict(),
                "objects": "ids 1..K, K = largest id of the first-frame annotation (void 255 excluded)",
                "missing_objects": "an object absent from a result mask is scored as an empty prediction",
                "empty_union": "J = 1 and F = 1 when an object is absent from both annotation and result",
            },
            "sequences": [vars(info) for info in self.sequences],
            "num_sequences": len(self.sequences),
            "num_objects": len(self.objects),
            "frames_scored": self.frames_scored,
            "global": self.global_scores,
            "per_object": [{"name": obj.name, **obj.row()} for obj in self.objects],
            "files": {key: str(path) for key, path in (files or {}).items()},
            "seconds": round(self.seconds, 3),
            "processes": self.processes,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dense_retrieval": __version__,
        }


@dataclass(frozen=True)
class _Job:
    """A run of consecutive frames of one sequence, scored by one worker."""

    sequence: str
    gt_paths: tuple[Path, ...]
    result_paths: tuple[Path, ...]
    num_objects: int
    binary: bool
    bound_th: float
    void: str


def evaluate_davis(
    davis_root: str | os.PathLike,
    results: str | os.PathLike,
    year: str = "2017",
    split: str = "val",
    *,
    resolution: str = "480p",
    conventions: JFConventions = JFConventions(),
    processes: int | None = None,
) -> DavisEvaluation:
    """Score ``results`` against the DAVIS annotations of ``year``/``split``.

    Args:
        davis_root: the DAVIS folder (JPEGImages/, Annotations/, ImageSets/).
        results: folder with ``<sequence>/<frame>.png`` masks for every scored frame.
        year: "2017" (indexed annotations) or "2016" (0/255 annotations, one object).
        split: the ImageSets file name ("val").
        resolution: "480p" or "Full-Resolution".
        conventions: scoring conventions (official defaults).
        processes: worker processes; 1 scores in this process; None uses every available core.

    Returns:
        A :class:`DavisEvaluation`.

    Raises:
        InputError / DataFormatError: naming the sequence or frame at fault, before any result is kept.
    """
    start = time.perf_counter()
    if processes is not None and processes < 1:
        raise InputError(f"processes must be at least 1, got {processes}")
    dataset = DavisDataset(davis_root, year=str(year), split=split, resolution=resolution)
    results = Path(results)
    plans = {name: _plan_sequence(dataset, name, conventions) for name in dataset.sequences}
    result_paths = find_result_frames(results, {name: [p.stem for p in plan[1]] for name, plan in plans.items()})
    jobs = [
        job
        for name, (info, gt_paths) in plans.items()
        for job in _jobs(name, info, gt_paths, result_paths[name], dataset.binary, conventions)
    ]
    workers = min(processes or _available_cores(), max(len(jobs), 1))
    objects: list[ObjectScores] = []
    for name, j, f in track(_score_sequences(jobs, workers), total=len(plans), desc="scoring", unit="seq"):
        objects.extend(object_scores(name, j, f, conventions))
    if not objects:
        raise DataFormatError(
            f"no objects to score in the {split!r} set of {dataset.root}: every first-frame annotation is empty"
        )
    return DavisEvaluation(
        davis_root=dataset.root.resolve(),
        results=results.resolve(),
        year=dataset.year,
        split=split,
        resolution=resolution,
        conventions=conventions,
        sequences=[info for info, _ in plans.values()],
        objects=objects,
        global_scores=global_scores(objects),
        seconds=time.perf_counter() - start,
        processes=workers,
    )


def run_davis_evaluation(
    davis_root: str | os.PathLike,
    results: str | os.PathLike,
    output: str | os.PathLike | None = None,
    year: str = "2017",
    split: str = "val",
    *,
    resolution: str = "480p",
    conventions: JFConventions = JFConventions(),
    processes: int | None = None,
    overwrite: bool = True,
) -> tuple[DavisEvaluation, dict[str, Path]]:
    """Score ``results`` and write the official CSV files plus a JSON report into ``output``.

    Args:
        output: the folder for ``global_results-<set>.csv``, ``per-sequence_results-<set>.csv`` and
            ``evaluation_report-<set>.json``; default: the results folder itself.
        overwrite: replace existing score files (always recomputed); False refuses with
            :class:`~.errors.OutputExistsError` before any work.
        Other arguments as :func:`evaluate_davis`.

    Returns:
        (the evaluation, the paths written).
    """
    paths = output_paths(Path(output) if output is not None else Path(results), split)
    check_outputs(paths, overwrite)
    evaluation = evaluate_davis(
        davis_root, results, year, split, resolution=resolution, conventions=conventions, processes=processes
    )
    report = evaluation.report(paths)
    write_evaluation_files(paths, evaluation.global_scores, evaluation.per_object_table(), report)
    return evaluation, paths


def _plan_sequence(dataset: DavisDataset, name: str, conventions: JFConventions) -> tuple[SequenceInfo, list[Path]]:
    """Object count, size and the annotations to score of one sequence."""
    annotations = list(dataset.sequence(name).annotations)
    if conventions.skip_first_and_last:
        if len(annotations) < 3:
            raise DataFormatError(
                f"sequence {name!r} has {len(annotations)} annotated frame(s); with the first and last frame"
                " excluded nothing is left to score",
                hint="semi-supervised scoring needs at least 3 annotated frames per sequence",
            )
        scored = annotations[1:-1]
    else:
        scored = annotations
    first = dataset.read_annotation(annotations[0])
    num_objects = int(first[first != VOID].max(initial=0))
    height, width = first.shape
    info = SequenceInfo(
        name,
        num_objects,
        len(annotations),
        len(scored),
        height,
        width,
        dilation_radius(first.shape, conventions.bound_th),
    )
    return info, scored


def _jobs(
    name: str,
    info: SequenceInfo,
    gt_paths: list[Path],
    result_paths: list[Path],
    binary: bool,
    conventions: JFConventions,
) -> list[_Job]:
    """Split a sequence into chunks of about :data:`CHUNK_FRAMES` frames of near-equal size."""
    count = len(gt_paths)
    chunks = max(1, math.ceil(count / CHUNK_FRAMES))
    bounds = np.linspace(0, count, chunks + 1).round().astype(int)
    return [
        _Job(
            name,
            tuple(gt_paths[lo:hi]),
            tuple(result_paths[lo:hi]),
            info.num_objects,
            binary,
            conventions.bound_th,
            conventions.void,
        )
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _score_job(job: _Job) -> tuple[np.ndarray, np.ndarray]:
    """J and F float [K, n] of the frames of ``job``: each annotation and result decoded once."""
    j = np.empty((job.num_objects, len(job.gt_paths)))
    f = np.empty_like(j)
    for index, (gt_path, result_path) in enumerate(zip(job.gt_paths, job.result_paths, strict=True)):
        gt = read_labels(gt_path, binary=job.binary)
        pred = read_result_mask(result_path, gt.shape, job.num_objects, job.binary, job.sequence)
        j[:, index], f[:, index] = score_frame(gt, pred, job.num_objects, bound_th=job.bound_th, void=job.void)
    return j, f


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` in a process that has done no threaded work; a fork server otherwise.

    Forking is the cheapest start (no imports in the workers), but a child forked from a process whose
    thread pools hold locks (torch's OpenMP and OpenCV's pools after a propagation in the same process,
    our frame-reading thread) can wait on them forever. Such work always loads torch, so a process
    without torch and with one Python thread forks; any other uses the fork server, a fresh process
    that imports this module once and forks the workers.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and "torch" not in sys.modules and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" not in methods:
        return multiprocessing.get_context()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _run_jobs(jobs: list[_Job], processes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Scores of ``jobs`` in order; the first failing job (in order) raises its error."""
    if processes == 1:
        for job in jobs:
            yield _score_job(job)
        return
    context = _pool_context()
    with ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_init_worker) as pool:
        futures = [pool.submit(_score_job, job) for job in jobs]
        try:
            for future in futures:
                yield future.result()  # a worker's DenseRetrievalError is raised here, hint included
        finally:
            for future in futures:
                future.cancel()


def _score_sequences(jobs: list[_Job], processes: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(sequence, J [K, T], F [K, T]) per sequence, as soon as all its chunks are done."""
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    for index, (job, (j, f)) in enumerate(zip(jobs, _run_jobs(jobs, processes), strict=True)):
        pending.append((j, f))
        if index + 1 == len(jobs) or jobs[index + 1].sequence != job.sequence:
            yield (
                job.sequence,
                np.concatenate([p[0] for p in pending], 1),
                np.concatenate([p[1] for p in pending], 1),
            )
            pending = []


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
