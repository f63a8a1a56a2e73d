"""A DAVIS results folder: finding and reading predicted masks, writing the official score files.

    RESULTS/<sequence>/<frame>.png     one indexed PNG per annotated frame (object ids, 0 = background)
    OUTPUT/global_results-<set>.csv    J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay
    OUTPUT/per-sequence_results-<set>.csv   Sequence,J-Mean,F-Mean (rows such as bike-packing_1)

The CSV files have the columns and ``%.3f`` values of davisvideochallenge/davis2017-evaluation.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import DataFormatError, InputError, OutputExistsError
from .atomic import atomic_path
from .images import pixel_budget
from .masks import read_label_png

GLOBAL_CSV = "global_results-{split}.csv"
PER_SEQUENCE_CSV = "per-sequence_results-{split}.csv"
REPORT_JSON = "evaluation_report-{split}.json"


def output_paths(output_dir: str | os.PathLike, split: str) -> dict[str, Path]:
    """Where an evaluation of ``split`` writes: keys ``global_csv``, ``per_sequence_csv``, ``report``."""
    output_dir = Path(output_dir)
    return {
        "global_csv": output_dir / GLOBAL_CSV.format(split=split),
        "per_sequence_csv": output_dir / PER_SEQUENCE_CSV.format(split=split),
        "report": output_dir / REPORT_JSON.format(split=split),
    }


def check_outputs(paths: Mapping[str, Path], overwrite: bool) -> None:
    """Raise before any work if the outputs cannot be written (a file in the way, or no overwriting)."""
    for path in paths.values():
        if path.parent.exists() and not path.parent.is_dir():
            raise InputError(f"output folder {path.parent} is a file", hint="pass a folder to --output")
        if path.is_dir():
            raise InputError(f"output {path} is a folder", hint="remove it or choose another --output")
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{path} already exists and overwriting was turned off",
                hint="drop --no-overwrite to recompute and replace it, or choose another --output",
            )


def find_result_frames(results: Path, sequences: Mapping[str, Sequence[str]]) -> dict[str, list[Path]]:
    """Paths of the result masks to score, checking that every one exists.

    Args:
        results: the results folder.
        sequences: sequence name -> the frame stems that must be present (e.g. ``['00001', ...]``).

    Returns:
        sequence name -> result PNG paths, in the order of the frame stems.

    Raises:
        InputError: ``results`` is not a folder.
        DataFormatError: a sequence folder or a frame is missing (named in the message).
    """
    if not results.is_dir():
        raise InputError(
            f"results folder not found: {results}",
            hint="pass the folder holding one sub-folder of PNG masks per sequence",
        )
    missing_sequences = [name for name in sequences if not (results / name).is_dir()]
    if missing_sequences:
        raise DataFormatError(
            f"results folder {results} has no folder for sequence {missing_sequences[0]!r}"
            f" ({len(missing_sequences)} of {len(sequences)} sequences missing)",
            hint="write one folder of PNG masks per sequence of the set (check --set and --year)",
        )
    paths: dict[str, list[Path]] = {}
    for name, stems in sequences.items():
        folder = results / name
        present = set(os.listdir(folder))
        missing = [stem for stem in stems if f"{stem}.png" not in present]
        if missing:
            raise DataFormatError(
                f"results for sequence {name!r} miss frame {missing[0]}.png in {folder}"
                f" ({len(missing)} of {len(stems)} scored frames missing)",
                hint="write one PNG mask per annotated frame, named like the annotation",
            )
        paths[name] = [folder / f"{stem}.png" for stem in stems]
    return paths


def read_labels(path: Path, binary: bool = False) -> np.ndarray:
    """Read a label PNG as a fresh, writable ``uint8 [H, W]``; the same values as ``read_label_png``.

    8-bit indexed and grayscale PNGs (every DAVIS annotation and result) are decoded straight into
    the returned array, which saves Pillow's intermediate copy (about 40% of the read time); any
    other file goes through :func:`~.masks.read_label_png` and its checks and errors.

    Args:
        path: the PNG.
        binary: one object stored as 0/255 (DAVIS-2016): nonzero becomes 1.
    """
    labels = _decode_8bit_png(path)
    if labels is None:
        return read_label_png(path, binary=binary)
    if binary:
        np.not_equal(labels, 0, out=labels.view(bool))
    return labels


def _decode_8bit_png(path: Path) -> np.ndarray | None:
    """Decode an 8-bit 'L' or 'P' PNG into a new numpy array, or None to take the general reader."""
    try:
        with Image.open(path, formats=("PNG",)) as image:
            if image.mode not in ("L", "P") or len(image.tile) != 1:
                return None
            width, height = image.size
            if width * height > pixel_budget() or width * height == 0:
                return None  # the general reader refuses it with the budget in its message
            labels = np.empty((height, width), np.uint8)
            target = Image.core.map_buffer(labels, (width, height), "raw", 0, (image.mode, 0, 1))
            image.im = target  # Pillow decodes into existing image memory (ImageFile.load_prepare)
            image.load()
            return labels if image.im is target else None
    except Exception:  # noqa: BLE001 - unreadable or unusual: the general reader raises the proper error
        return None


def read_result_mask(path: Path, shape: tuple[int, int], num_objects: int, binary: bool, sequence: str) -> np.ndarray:
    """Read and check one predicted mask.

    Args:
        path: the PNG (indexed; grayscale; RGB only with exact palette colours).
        shape: (H, W) of the matching annotation.
        num_objects: K of the sequence; ids above K are an error (the reference would exit).
        binary: DAVIS-2016: the mask holds one object as 0/1 or 0/255.
        sequence: the sequence name, for messages.

    Returns:
        uint8 [H, W] object ids in ``0..K``.
    """
    labels = read_labels(path)
    if labels.shape != tuple(shape):
        raise DataFormatError(
            f"result mask {path} is {labels.shape[1]}x{labels.shape[0]} (WxH) but the annotation of sequence"
            f" {sequence!r} is {shape[1]}x{shape[0]}",
            hint="write masks at the size of the annotations",
        )
    top = int(labels.max(initial=0))
    if binary and top > 1:
        stray = cv2.inRange(labels, 2, 254)
        if cv2.countNonZero(stray):
            raise DataFormatError(
                f"result mask {path} has value {int(labels[stray != 0][0])};"
                " DAVIS-2016 results hold one object as 0/1 or 0/255",
                hint="threshold the masks and save 0/255 (or 0/1) PNGs",
            )
        labels = labels if labels.flags.writeable else labels.copy()
        np.not_equal(labels, 0, out=labels.view(bool))
        top = 1
    if top > num_objects:
        raise DataFormatError(
            f"result mask {path} has object id {top} but sequence {sequence!r} has {num_objects} object(s)"
            " (counted from its first-frame annotation)",
            hint="use the object ids of the first-frame annotation, 0 for background",
        )
    return labels


def write_evaluation_files(
    paths: Mapping[str, Path],
    global_row: Mapping[str, float],
    per_object: Sequence[tuple[str, float, float]],
    report: Mapping,
) -> None:
    """Write the official CSV files (``%.3f`` values) and the JSON report, all or nothing.

    Each file is written to a temporary sibling first; they replace the previous files only once all
    three are complete, so an interrupted run leaves the previous results intact.

    Args:
        paths: from :func:`output_paths`.
        global_row: column -> value, in the official column order.
        per_object: (row name such as ``bike-packing_1``, J-Mean, F-Mean) per object.
        report: the JSON report document.
    """
    with contextlib.ExitStack() as stack:
        global_tmp = stack.enter_context(atomic_path(paths["global_csv"]))
        sequence_tmp = stack.enter_context(atomic_path(paths["per_sequence_csv"]))
        report_tmp = stack.enter_context(atomic_path(paths["report"]))
        with open(global_tmp, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(list(global_row))
            writer.writerow([f"{value:.3f}" for value in global_row.values()])
        with open(sequence_tmp, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["Sequence", "J-Mean", "F-Mean"])
            writer.writerows([name, f"{j:.3f}", f"{f:.3f}"] for name, j, f in per_object)
        with open(report_tmp, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, default=str)
            handle.write("\n")
