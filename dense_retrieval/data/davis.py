"""The DAVIS dataset layout: reading sequences and annotations, writing a dataset.

ROOT/JPEGImages/480p/<seq>/00000.jpg
ROOT/Annotations/480p/<seq>/00000.png     (2017: indexed PNG, DAVIS palette; 2016: 0/255)
ROOT/ImageSets/2017/{train,val}.txt        (one sequence name per line)
ROOT/ImageSets/2016/{train,val}.txt        (names, or DAVIS-2016's "/JPEGImages/480p/seq/..." lines)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, InputError
from ..labels import VOID
from ..records import check_entry_name
from .atomic import atomic_open
from .images import read_image, write_image
from .masks import read_label_png, write_label_png

YEARS = ("2016", "2017")


@dataclass(frozen=True)
class DavisSequence:
    """One sequence: frame JPEGs and annotation PNGs, both sorted by frame number."""

    name: str
    frames: tuple[Path, ...]
    annotations: tuple[Path, ...]

    @property
    def frame_names(self) -> tuple[str, ...]:
        """Frame stems such as ``'00000'``; results are written under these names."""
        return tuple(p.stem for p in self.frames)


class DavisDataset:
    """A DAVIS root for one year, split and resolution.

    Args:
        root: the folder holding JPEGImages/, Annotations/ and ImageSets/.
        year: "2017" (indexed multi-object annotations) or "2016" (0/255, one object).
        split: the ImageSets file name without suffix ("val", "train", ...).
        resolution: "480p" or "Full-Resolution".
    """

    def __init__(self, root: str | os.PathLike, year: str = "2017", split: str = "val", resolution: str = "480p"):
        self.root = Path(root)
        self.year = str(year)
        self.split = split
        self.resolution = resolution
        if self.year not in YEARS:
            raise InputError(f"unknown DAVIS year {year!r}", hint="use 2016 or 2017")
        if not self.root.is_dir():
            raise InputError(f"DAVIS root not found: {self.root}", hint="pass the folder holding JPEGImages/")
        for sub in ("JPEGImages", "Annotations"):
            if not (self.root / sub / resolution).is_dir():
                raise DataFormatError(
                    f"{self.root} has no {sub}/{resolution}/ folder",
                    hint="expected the DAVIS layout: JPEGImages/480p/<seq>/, Annotations/480p/<seq>/",
                )
        self.sequences: list[str] = self._read_image_set()

    @property
    def binary(self) -> bool:
        """DAVIS-2016 annotations are one object stored as 0/255."""
        return self.year == "2016"

    def _read_image_set(self) -> list[str]:
        candidates = [self.root / "ImageSets" / self.year / f"{self.split}.txt"]
        if self.year == "2016":
            candidates.append(self.root / "ImageSets" / self.resolution / f"{self.split}.txt")
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DataFormatError(
                f"missing ImageSets file {candidates[0]}",
                hint=f"check --year/--set, or write the sequence names of the {self.split!r} set there",
            )
        self.image_set_path = path
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataFormatError(
                f"ImageSets file {path} is not UTF-8 text (byte {error.start})", hint="save it as UTF-8"
            ) from None
        names: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            # DAVIS-2016 lists "/JPEGImages/480p/<seq>/00000.jpg /Annotations/..." per frame
            name = Path(line.split()[0]).parent.name if line.startswith("/JPEGImages/") else line
            check_entry_name(name, f"ImageSets file {path}")  # names become folders of the results
            if name not in names:
                names.append(name)
        if not names:
            raise DataFormatError(f"ImageSets file {path} lists no sequences")
        return names

    def sequence(self, name: str) -> DavisSequence:
        """Frame and annotation paths of ``name``. Raises DataFormatError if the sequence has no frames."""
        frame_dir = self.root / "JPEGImages" / self.resolution / name
        ann_dir = self.root / "Annotations" / self.resolution / name
        if not frame_dir.is_dir():
            raise DataFormatError(f"sequence {name!r} has no frames folder {frame_dir}")
        frames = tuple(sorted(p for p in frame_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")))
        annotations = tuple(sorted(ann_dir.glob("*.png"))) if ann_dir.is_dir() else ()
        if not frames:
            raise DataFormatError(f"sequence {name!r} has no frames in {frame_dir}")
        if not annotations:
            raise DataFormatError(f"sequence {name!r} has no annotations in {ann_dir}")
        return DavisSequence(name, frames, annotations)

    def read_frame(self, name: str, index: int) -> np.ndarray:
        """Frame ``index`` of sequence ``name`` as ``uint8 [H, W, 3]``."""
        return read_image(self.sequence(name).frames[index])

    def read_annotation(self, path: str | os.PathLike) -> np.ndarray:
        """An annotation as ``uint8 [H, W]`` object ids (2016: 0/1; 2017: ids, 255 = void)."""
        return read_label_png(path, binary=self.binary)

    def first_frame_labels(self, name: str) -> np.ndarray:
        """The first-frame annotation of ``name``: ``uint8 [H, W]``, the propagation's starting point."""
        return self.read_annotation(self.sequence(name).annotations[0])

    def num_objects(self, name: str) -> int:
        """Number of objects: the largest id in the first-frame annotation (void excluded), as DAVIS counts."""
        labels = self.first_frame_labels(name)
        labels = labels[labels != VOID]
        return int(labels.max(initial=0))


def write_davis_sequence(
    root: str | os.PathLike,
    name: str,
    frames: Iterable[np.ndarray],
    labels: Iterable[np.ndarray],
    year: str = "2017",
    resolution: str = "480p",
) -> int:
    """Write one sequence in the DAVIS layout: ``frames`` ``uint8 [H, W, 3]``, ``labels`` ``uint8 [H, W]``.

    Both may be lists or iterators (consumed one frame at a time). Returns the number of frames written.
    """
    root = Path(root)
    if hasattr(frames, "__len__") and hasattr(labels, "__len__") and len(frames) != len(labels):
        raise InputError(f"{len(frames)} frames but {len(labels)} label maps for sequence {name!r}")
    count = 0
    try:
        for count, (frame, label) in enumerate(zip(frames, labels, strict=True), start=1):
            stem = f"{count - 1:05d}"
            write_image(root / "JPEGImages" / resolution / name / f"{stem}.jpg", frame)
            annotation = root / "Annotations" / resolution / name / f"{stem}.png"
            write_label_png(annotation, label, binary=(year == "2016"))
    except ValueError as error:
        if "zip()" not in str(error):
            raise
        raise InputError(f"sequence {name!r}: the numbers of frames and label maps differ") from None
    return count


def write_image_set(root: str | os.PathLike, names: list[str], year: str = "2017", split: str = "val") -> Path:
    """Write ``ImageSets/<year>/<split>.txt`` listing ``names``; returns its path."""
    path = Path(root) / "ImageSets" / str(year) / f"{split}.txt"
    with atomic_open(path, "w") as handle:
        handle.write("".join(f"{name}\n" for name in names))
    return path
