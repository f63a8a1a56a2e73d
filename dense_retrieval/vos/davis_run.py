"""DAVIS results by label propagation: one folder of indexed PNGs per sequence, resumable.

    OUT/propagation.json          what made the masks (protocol, backbone, weights, features, DAVIS root) and
                                  the sequences finished, with their timings
    OUT/<sequence>/<frame>.png    one mask per frame at annotation size (2017: DAVIS palette ids;
                                  2016: 0/255), ready for ``dense-retrieval davis evaluate``

A sequence folder appears only when complete (written under a temporary name, then renamed) and is
counted only once ``propagation.json`` lists it, so an interrupted run resumes where it stopped. A
folder made with another configuration is never mixed with new results (:mod:`.results_run`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..backbone.features import FeatureExtractor
from ..data.atomic import atomic_directory
from ..data.davis import DavisDataset
from ..data.images import read_image
from ..data.masks import read_label_png, write_label_png
from ..distributed import Ranks
from ..errors import DataFormatError
from ..propagation.config import PropagationConfig
from ..viz.strip import label_strip, thumbnail
from .frames import check_first_mask, propagate_frames, run_record
from .results_run import Commit, VideoResult, propagate_into, select_names

SequenceResult = VideoResult
"""One sequence of a run (:class:`~.results_run.VideoResult`)."""


def propagate_davis_sequence(
    dataset: DavisDataset,
    name: str,
    out: str | os.PathLike,
    extractor: FeatureExtractor,
    config: PropagationConfig,
    commit: Commit | None = None,
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
    ranks: Ranks | None = None,
) -> dict:
    """Propagate every (or the named) sequence of ``dataset`` into ``out``, resuming a previous run.

    The folder follows :mod:`.results_run`: one folder per sequence, committed with its record entry; under
    torchrun (``ranks``) every rank propagates its share of the sequences into the one folder.

    Args:
        dataset: the DAVIS root, year, split and resolution.
        out: the results folder.
        extractor: backbone + feature settings.
        config: the propagation protocol.
        sequences: names to run (default: the split's ImageSets list).
        overwrite: replace results made with another configuration (otherwise an error).
        log: receives one line per sequence (progress for people).
        ranks: the ranks of a torchrun job (call it on every rank); None: one process.

    Returns:
        A summary: the run's configuration and, per sequence, frames, objects, seconds and status.

    Raises:
        InputError: an unknown sequence name.
        ConfigMismatchError: ``out`` holds results of another configuration and not ``overwrite``.
        OutputExistsError: ``out`` holds other files than a previous run's and not ``overwrite``.
    """
    names = select_names(dataset.sequences, sequences, f"the {dataset.year} {dataset.split!r} set")
    for name in names:  # bad input fails before anything is written (the same on every rank)
        check_sequence(dataset, name)
    davis = {"root": str(dataset.root.resolve()), "year": dataset.year, "resolution": dataset.resolution}
    run = run_record(extractor, config, davis=davis)

    def propagate(name: str, commit: Commit) -> SequenceResult:
        return propagate_davis_sequence(dataset, name, out, extractor, config, commit)

    inputs = _inputs(dataset, names)
    return propagate_into(out, inputs, names, run, propagate, sequence_complete, overwrite, log, ranks)


def sequence_complete(folder: Path, entry: dict) -> bool:
    """Whether a recorded sequence's folder holds a mask for each of its frames."""
    return folder.is_dir() and sum(1 for _ in folder.glob("*.png")) == entry["frames"]


def _inputs(dataset: DavisDataset, names: list[str]) -> list[Path]:
    """What a run reads: the sequences' frame and annotation folders, and the ImageSets file."""
    res = dataset.resolution
    folders = [dataset.root / kind / res / name for name in names for kind in ("JPEGImages", "Annotations")]
    return [*folders, dataset.image_set_path]


def check_sequence(dataset: DavisDataset, name: str) -> None:
    """Frames and a first-frame annotation with objects, of the frames' size (headers only)."""
    sequence = dataset.sequence(name)
    try:
        with Image.open(sequence.frames[0]) as image:
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise DataFormatError(f"unreadable frame {sequence.frames[0]}: {error}") from None
    check_first_mask(dataset.first_frame_labels(name), (height, width), f"{name}: first-frame annotation")
