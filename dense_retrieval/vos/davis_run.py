"""DAVIS results by label propagation: one folder of indexed PNGs per sequence, resumable.

    OUT/propagation.json          what made the masks (protocol, backbone, weights, features, DAVIS root) and
                                  the sequences finished, with their timings
    OUT/<sequence>/<frame>.png    one mask per frame at annotation size (2017: DAVIS palette ids;
                                  2016: 0/255), ready for ``dense-retrieval davis evaluate``

A sequence folder appears only when complete (written under a temporary name, then renamed) and is
counted only once ``propagation.json`` lists it, so an interrupted run resumes where it stopped. A
folder made with another configuration is never mixed with new results.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import __version__
from ..backbone.features import FeatureExtractor
from ..data.atomic import atomic_directory, write_json
from ..data.davis import DavisDataset
from ..data.images import read_image
from ..data.masks import read_label_png, write_label_png
from ..data.outputs import check_output, locked, remove_owned
from ..errors import ConfigMismatchError, DataFormatError, InputError, OutputExistsError
from ..propagation.config import PropagationConfig
from ..records import RunRecord, read_propagation_record
from ..viz.strip import label_strip, thumbnail
from .frames import RECORD, check_first_mask, propagate_frames, run_record

_LEFTOVER = re.compile(r"^\..+\.(tmp|old)(\.\w+)?$")


@dataclass(frozen=True)
class SequenceResult:
    """One sequence of a run: ``status`` is "done" (propagated now) or "skipped" (already complete)."""

    name: str
    frames: int
    objects: int
    seconds: float
    status: str


def propagate_davis_sequence(
    dataset: DavisDataset,
    name: str,
    out: str | os.PathLike,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    commit: Callable[[SequenceResult], None] | None = None,
) -> SequenceResult:
    """Propagate the first-frame annotation of sequence ``name`` and write ``out/<name>/<frame>.png``.

    The folder is built under a temporary name and swapped in when every frame is written; ``commit``
    (recording it) runs in the same commit section, so Ctrl-C never separates the two.

    Raises:
        DataFormatError: the annotation's size differs from the frames'.
        InputError: the first-frame annotation holds no object.
    """
    sequence = dataset.sequence(name)
    first = dataset.first_frame_labels(name)
    decoder = extractor.preprocessing.decode
    first_frame = read_image(sequence.frames[0], decoder)
    num_labels = check_first_mask(first, first_frame.shape[:2], f"{name}: first-frame annotation")
    start = time.perf_counter()
    frames = (read_image(path, decoder) for path in sequence.frames)
    results = propagate_frames(frames, first, extractor, config, num_labels, len(sequence.frames), desc=name)
    done: list[SequenceResult] = []
    with atomic_directory(Path(out) / name, then=lambda: commit and commit(done[0]), final=False) as folder:
        for stem, (_, labels) in zip(sequence.frame_names, results, strict=True):
            write_label_png(folder / f"{stem}.png", labels, binary=dataset.binary)
        done.append(SequenceResult(name, len(sequence.frames), num_labels - 1, time.perf_counter() - start, "done"))
    return done[0]


def sequence_strip(
    dataset: DavisDataset, name: str, results: str | os.PathLike, count: int = 8, height: int = 160
) -> np.ndarray:
    """A picture of propagated masks: ``count`` evenly spaced frames of ``name`` with their result masks
    from ``results/<name>/`` overlaid, captioned by frame number. Returns ``uint8 [H, W, 3]``."""
    sequence = dataset.sequence(name)
    picks = sorted({round(i * (len(sequence.frames) - 1) / max(count - 1, 1)) for i in range(count)})
    thumbnails = []
    for index in picks:
        stem = sequence.frame_names[index]
        labels = read_label_png(Path(results) / name / f"{stem}.png", binary=dataset.binary)
        thumbnails.append(thumbnail(read_image(sequence.frames[index]), labels, height, f"{name} {stem}"))
    return label_strip(thumbnails)


def propagate_davis(
    dataset: DavisDataset,
    out: str | os.PathLike,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    sequences: Sequence[str] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Propagate every (or the named) sequence of ``dataset`` into ``out``, resuming a previous run.

    Args:
        dataset: the DAVIS root, year, split and resolution.
        out: the results folder.
        extractor: backbone + feature settings.
        config: the propagation protocol.
        sequences: names to run (default: the split's ImageSets list).
        overwrite: replace results made with another configuration (otherwise an error).
        log: receives one line per sequence (progress for people).

    Returns:
        A summary: the run's configuration and, per sequence, frames, objects, seconds and status.

    Raises:
        InputError: an unknown sequence name.
        ConfigMismatchError: ``out`` holds results of another configuration and not ``overwrite``.
        OutputExistsError: ``out`` holds other files than a previous run's and not ``overwrite``.
    """
    out = Path(out)
    log = log or (lambda _line: None)
    names = _select(dataset, sequences)
    for name in names:  # bad input fails before anything is written
        _check_sequence(dataset, name)
    check_output(out, _inputs(dataset, names), kind="dir")
    davis = {"root": str(dataset.root.resolve()), "year": dataset.year, "resolution": dataset.resolution}
    run = run_record(extractor, config, davis=davis)
    out.mkdir(parents=True, exist_ok=True)
    with locked(out, "results folder"):
        return _propagate_locked(dataset, out, extractor, config, names, run, overwrite, log)


def _inputs(dataset: DavisDataset, names: list[str]) -> list[Path]:
    """What a run reads: the sequences' frame and annotation folders, and the ImageSets file."""
    res = dataset.resolution
    folders = [dataset.root / kind / res / name for name in names for kind in ("JPEGImages", "Annotations")]
    return [*folders, dataset.image_set_path]


def _propagate_locked(
    dataset: DavisDataset,
    out: Path,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    names: list[str],
    run: RunRecord,
    overwrite: bool,
    log: Callable[[str], None],
) -> dict:
    _remove_leftovers(out)
    record = _open_record(out, run, overwrite)
    results: list[SequenceResult] = []
    for position, name in enumerate(names, start=1):
        done = record["sequences"].get(name)
        if done and _complete(out / name, done["frames"]):
            log(f"[{position}/{len(names)}] {name}: already complete, skipped")
            results.append(SequenceResult(name, done["frames"], done["objects"], 0.0, "skipped"))
            continue
        log(f"[{position}/{len(names)}] {name}: propagating")

        def commit(result: SequenceResult, name: str = name) -> None:
            record["sequences"][name] = {
                "frames": result.frames,
                "objects": result.objects,
                "seconds": round(result.seconds, 2),
            }
            write_json(out / RECORD, record)

        result = propagate_davis_sequence(dataset, name, out, extractor, config, commit)
        log(
            f"[{position}/{len(names)}] {name}: {result.frames} frames, {result.objects} object(s), "
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


def _select(dataset: DavisDataset, sequences: Sequence[str] | None) -> list[str]:
    if not sequences:
        return list(dataset.sequences)
    unknown = [name for name in sequences if name not in dataset.sequences]
    if unknown:
        raise InputError(
            f"sequence(s) {', '.join(unknown)} not in the {dataset.year} {dataset.split!r} set",
            hint=f"choose among: {', '.join(dataset.sequences)}",
        )
    return list(dict.fromkeys(sequences))


def _check_sequence(dataset: DavisDataset, name: str) -> None:
    """Frames and a first-frame annotation with objects, of the frames' size (headers only)."""
    sequence = dataset.sequence(name)
    try:
        with Image.open(sequence.frames[0]) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise DataFormatError(f"unreadable frame {sequence.frames[0]}: {error}") from None
    check_first_mask(dataset.first_frame_labels(name), (height, width), f"{name}: first-frame annotation")


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
    its sequence names become paths to delete under ``--overwrite``, so anything but plain names is refused.
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
                f"{out} holds masks made with another configuration (differs in: {', '.join(changed)})",
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


def _complete(folder: Path, frames: int) -> bool:
    return folder.is_dir() and sum(1 for _ in folder.glob("*.png")) == frames
