"""A results folder filled one video at a time: resumable, locked, never mixing configurations.

Every video benchmark (DAVIS, JHMDB, VIP) writes the same way:

    OUT/propagation.json     what made the results (the run record) and the videos finished, with their
                             frame count, label count and seconds
    OUT/<video>/...          one folder per video (masks, keypoints, an overlay), whatever the benchmark

A video folder is built under a temporary name and swapped in when complete; the record lists it in
the same commit section (:func:`~dense_retrieval.data.atomic.atomic_directory`), so an interrupted run
resumes where it stopped and Ctrl-C never separates a folder from its record entry. A folder made with
another configuration is never mixed with new results (``overwrite`` replaces them), the output is
locked for the whole run, and leftovers of killed runs are removed first (house rules 6 and 15).

Under torchrun (``ranks`` of a :func:`~dense_retrieval.distributed.session`) every rank propagates its share
of the unfinished videos into the one folder: the main rank holds the folder's lock and is the only writer
of ``propagation.json``; each rank commits a finished video in a file of its own (:mod:`.results_commits`),
folded into ``propagation.json`` when every rank is done, or by the next run when the job was killed. The
results are those of one process: each video is propagated whole by one rank.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..data.atomic import write_json
from ..data.outputs import check_output, locked, remove_owned
from ..distributed import Ranks
from ..errors import ConfigMismatchError, DataFormatError, InputError, OutputExistsError
from ..records import RESULTS_RECORD as RECORD
from ..records import RunRecord, read_propagation_record
from .results_commits import clear_commits, commit_video, fold_commits

_LEFTOVER = re.compile(r"^\..+\.(tmp|old)(\.\w+)?$")


@dataclass(frozen=True)
class VideoResult:
    """One video of a run: ``status`` is "done" (propagated now) or "skipped" (already complete).

    ``objects`` counts the label channels a benchmark follows: objects (DAVIS), joints (JHMDB), parts (VIP).
    """

    name: str
    frames: int
    objects: int
    seconds: float
    status: str


Commit = Callable[[VideoResult], None]
"""Records a finished video in ``propagation.json``; a runner calls it in the commit of the video's folder."""


def propagate_into(
    out: str | os.PathLike,
    inputs: Iterable[Path],
    names: Sequence[str],
    run: RunRecord,
    propagate: Callable[[str, Commit], VideoResult],
    complete: Callable[[Path, dict], bool],
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    ranks: Ranks | None = None,
) -> dict:
    """Fill ``out`` with one folder per video of ``names``, resuming a previous run of the same record.

    Args:
        out: the results folder (created).
        inputs: what the run reads; ``out`` may not equal, contain or lie inside any of them.
        names: the videos, in order; each becomes ``out/<name>``.
        run: the run record; a folder made with another one is refused (or replaced with ``overwrite``).
        propagate: ``propagate(name, commit)`` writes ``out/<name>`` and calls ``commit`` in its commit.
        complete: ``complete(folder, entry)``: whether a recorded video's folder is whole (its record
            entry holds ``frames``, ``objects``, ``seconds``).
        overwrite: replace results made with another configuration (otherwise an error).
        log: receives one line per video (progress for people).
        ranks: under torchrun, the job's ranks: each propagates its share of the videos (module docstring).
            Call it on every rank; the summary is the same on all.

    Returns:
        A summary: the run record and, per video, frames, objects, seconds and status.

    Raises:
        ConfigMismatchError: ``out`` holds results of another configuration and not ``overwrite``.
        OutputExistsError: ``out`` holds other files than a previous run's and not ``overwrite``.
    """
    out = Path(out)
    log = log or (lambda _line: None)
    ranks = ranks or Ranks()
    error = None
    try:
        check_output(out, list(inputs), kind="dir")
    except Exception as caught:  # noqa: BLE001 - every rank stops with the same error
        error = caught
    ranks.agree(error)
    if ranks.world > 1:
        return _propagate_shared(out, list(names), run, propagate, complete, overwrite, log, ranks)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out, "results folder"):
        return _propagate_locked(out, list(names), run, propagate, complete, overwrite, log)


def open_results(out: Path, run: RunRecord, overwrite: bool) -> dict:
    """The record of the results folder ``out`` for ``run`` (the caller holds ``out``): leftovers of killed runs
    removed, videos committed by the ranks of a killed torchrun job folded in, a previous record of the same
    configuration resumed, one of another replaced under ``overwrite`` (else an error)."""
    _remove_leftovers(out)
    path = out / RECORD
    if path.is_file():
        try:
            previous = read_propagation_record(json.loads(path.read_text(encoding="utf-8")), str(path))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, OSError, DataFormatError):
            previous = None  # _open_record names the problem
        if previous is not None and fold_commits(out, previous):
            write_json(path, previous)
        if previous is not None:
            clear_commits(out)
    return _open_record(out, run, overwrite)


def pending_videos(out: Path, record: dict, names: Sequence[str], complete: Callable[[Path, dict], bool]) -> list[str]:
    """The videos of ``names`` that ``record`` does not list as complete in ``out``, in order."""
    return [
        name
        for name in names
        if not (record["sequences"].get(name) and complete(out / name, record["sequences"][name]))
    ]


def commit_to(out: Path) -> Commit:
    """The commit of a video propagated by one of several processes (:mod:`.results_commits`)."""

    def commit(result: VideoResult) -> None:
        commit_video(
            out, result.name, {"frames": result.frames, "objects": result.objects, "seconds": round(result.seconds, 2)}
        )

    return commit


def collect_results(out: Path) -> dict:
    """Fold every rank's commits into ``out``'s ``propagation.json`` (its one writer) and return the record."""
    path = out / RECORD
    record = read_propagation_record(json.loads(path.read_text(encoding="utf-8")), str(path))
    fold_commits(out, record)
    write_json(path, record)
    clear_commits(out)
    return record


def _propagate_shared(
    out: Path,
    names: list[str],
    run: RunRecord,
    propagate: Callable[[str, Commit], VideoResult],
    complete: Callable[[Path, dict], bool],
    overwrite: bool,
    log: Callable[[str], None],
    ranks: Ranks,
) -> dict:
    """Every rank propagates its share of the pending videos; the main rank holds ``out`` and its record."""
    with contextlib.ExitStack() as held:
        pending, error = None, None
        if ranks.is_main:
            try:
                out.mkdir(parents=True, exist_ok=True)
                held.enter_context(locked(out, "results folder"))
                pending = pending_videos(out, open_results(out, run, overwrite), names, complete)
            except Exception as caught:  # noqa: BLE001 - every rank stops with the same error
                error = caught
        ranks.agree(error)
        pending = ranks.broadcast_object(pending)
        mine = [pending[i] for i in ranks.mine(len(pending))]
        done: list[VideoResult] = []
        error = None
        try:
            for position, name in enumerate(mine, start=1):
                log(f"[rank {ranks.rank}: {position}/{len(mine)}] {name}: propagating")
                done.append(propagate(name, commit_to(out)))
        except Exception as caught:  # noqa: BLE001 - the finished videos stay committed for the next run
            error = caught
        ranks.agree(error)
        propagated = {result.name: result for share in ranks.gather_objects(done) for result in share}
        if ranks.is_main:
            collect_results(out)
        ranks.barrier()
    recorded = json.loads((out / RECORD).read_text(encoding="utf-8"))["sequences"]
    results = [
        propagated.get(name) or VideoResult(name, recorded[name]["frames"], recorded[name]["objects"], 0.0, "skipped")
        for name in names
    ]
    return _summary(out, run, results)


def _propagate_locked(
    out: Path,
    names: list[str],
    run: RunRecord,
    propagate: Callable[[str, Commit], VideoResult],
    complete: Callable[[Path, dict], bool],
    overwrite: bool,
    log: Callable[[str], None],
) -> dict:
    record = open_results(out, run, overwrite)
    results: list[VideoResult] = []
    for position, name in enumerate(names, start=1):
        done = record["sequences"].get(name)
        if done and complete(out / name, done):
            log(f"[{position}/{len(names)}] {name}: already complete, skipped")
            results.append(VideoResult(name, done["frames"], done["objects"], 0.0, "skipped"))
            continue
        log(f"[{position}/{len(names)}] {name}: propagating")

        def commit(result: VideoResult, name: str = name) -> None:
            record["sequences"][name] = {
                "frames": result.frames,
                "objects": result.objects,
                "seconds": round(result.seconds, 2),
            }
            write_json(out / RECORD, record)

        result = propagate(name, commit)
        log(
            f"[{position}/{len(names)}] {name}: {result.frames} frames, {result.objects} label(s), "
            f"{result.seconds:.1f} s ({result.frames / max(result.seconds, 1e-9):.2f} frames/s)"
        )
        results.append(result)
    return _summary(out, run, results)


def _summary(out: Path, run: RunRecord, results: list[VideoResult]) -> dict:
    propagated = [r for r in results if r.status == "done"]
    seconds = sum(r.seconds for r in propagated)
    return {
        "out": str(out),
        "record": str(out / RECORD),
        "run": run.as_dict(),
        "sequences": {
            r.name: {"frames": r.frames, "objects": r.objects, "seconds": round(r.seconds, 2), "status": r.status}
            for r in results
        },
        "frames_propagated": sum(r.frames for r in propagated),
        "frames_per_second": round(sum(r.frames for r in propagated) / seconds, 3) if seconds else None,
    }


def select_names(available: Sequence[str], wanted: Sequence[str] | None, what: str) -> list[str]:
    """``wanted`` (duplicates dropped) when every name is in ``available``, else all of ``available``.

    Raises:
        InputError: a wanted name is not available (``what`` names the set, e.g. "the 2017 'val' set").
    """
    if not wanted:
        return list(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        shown = ", ".join(list(available)[:20]) + (", ..." if len(available) > 20 else "")
        raise InputError(f"{', '.join(unknown)} not in {what}", hint=f"choose among: {shown}")
    return list(dict.fromkeys(wanted))


def _recipe_differs(changed: list[str]) -> bool:
    """Only the preprocessing recipe differs (e.g. a folder made before recipes, read as ``pil-bicubic``)."""
    return all(key.startswith("features.preprocess.") for key in changed)


def _remove_leftovers(out: Path) -> None:
    """Temporary folders and files of interrupted runs inside ``out`` (the run holds ``out``: none is live)."""
    for entry in out.iterdir():
        if _LEFTOVER.match(entry.name):
            remove_owned(entry, out)


def _open_record(out: Path, run: RunRecord, overwrite: bool) -> dict:
    """The run record of ``out``: a previous one with the same configuration, or a new one.

    The previous record is checked against its schema first (:func:`~dense_retrieval.records.read_propagation_record`):
    its video names become paths to delete under ``--overwrite``, so anything but plain names is refused.
    """
    path = out / RECORD
    fresh = {"tool": f"dense-retrieval {__version__}", "run": run.as_dict(), "sequences": {}}
    if path.is_file():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, OSError):
            raise DataFormatError(
                f"{path} is not a propagation record (not JSON)", hint="remove it or choose another --out"
            ) from None
        previous = read_propagation_record(document, str(path))
        recorded = RunRecord.from_dict(previous["run"], str(path))
        changed = recorded.differences(run)
        if not changed:
            previous.setdefault("sequences", {})
            return previous
        if not overwrite:
            recipe = f"pass --preprocess {recorded.features['preprocess']['name']} to continue it, "
            raise ConfigMismatchError(
                f"{out} holds results made with another configuration (differs in: {', '.join(changed)})",
                hint=f"choose another --out, {recipe if _recipe_differs(changed) else ''}"
                "or pass --overwrite to replace them",
            )
        links = [name for name in previous["sequences"] if (out / name).is_symlink()]
        if links:
            raise InputError(
                f"{out / links[0]} is a link, not a results folder; refusing to replace it",
                hint="remove the link or choose another --out",
            )
        for name in previous["sequences"]:
            if (out / name).exists():
                remove_owned(out / name, out)
    elif out.is_dir() and any(not entry.name.startswith(".") for entry in out.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{out} is not empty and holds no {RECORD}", hint="choose an empty or new --out, or pass --overwrite"
        )
    write_json(path, fresh)
    return fresh
