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
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..data.atomic import write_json
from ..data.outputs import check_output, locked, remove_owned
from ..errors import ConfigMismatchError, DataFormatError, InputError, OutputExistsError
from ..records import RESULTS_RECORD as RECORD
from ..records import RunRecord, read_propagation_record

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

    Returns:
        A summary: the run record and, per video, frames, objects, seconds and status.

    Raises:
        ConfigMismatchError: ``out`` holds results of another configuration and not ``overwrite``.
        OutputExistsError: ``out`` holds other files than a previous run's and not ``overwrite``.
    """
    out = Path(out)
    log = log or (lambda _line: None)
    check_output(out, list(inputs), kind="dir")
    out.mkdir(parents=True, exist_ok=True)
    with locked(out, "results folder"):
        return _propagate_locked(out, list(names), run, propagate, complete, overwrite, log)


def _propagate_locked(
    out: Path,
    names: list[str],
    run: RunRecord,
    propagate: Callable[[str, Commit], VideoResult],
    complete: Callable[[Path, dict], bool],
    overwrite: bool,
    log: Callable[[str], None],
) -> dict:
    _remove_leftovers(out)
    record = _open_record(out, run, overwrite)
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
