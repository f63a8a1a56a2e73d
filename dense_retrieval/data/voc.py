"""The PASCAL VOC segmentation layout: reading a split, writing samples and split files.

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png       (indexed PNG, VOC palette: class ids 0..20, 255 = void/boundary)
    ROOT/SegmentationObject/<id>.png      (optional; indexed PNG: instance ids 1..n, 255 = void)
    ROOT/ImageSets/Segmentation/<split>.txt   (one id per line; train / val / trainval)

ROOT is the ``VOC2012`` folder; a ``VOCdevkit`` folder (or any folder holding ``VOC2012/``) is
accepted too and resolved to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, InputError
from ..labels import VOID
from .atomic import atomic_open
from .images import read_image, write_image
from .masks import read_label_png, write_label_png

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
"""The 21 PASCAL VOC class names; the index is the label id (0 = background)."""

VOC7_CLASS_IDS: tuple[int, ...] = (1, 5, 6, 7, 8, 10, 15)
"""The 7-class subset of the MaskContrast protocol: aeroplane, bottle, bus, car, cat, cow, person."""

VOC7_CLASSES: tuple[str, ...] = tuple(VOC_CLASSES[i] for i in VOC7_CLASS_IDS)

_SPLIT_DIR = Path("ImageSets") / "Segmentation"


@dataclass(frozen=True)
class VocSample:
    """One image of a split: its id and the paths of its image and label PNGs."""

    id: str
    image: Path
    class_labels: Path
    object_labels: Path | None


class VocDataset:
    """One split of a PASCAL VOC segmentation root.

    The layout is checked when the dataset is opened: the folders must exist, the split file must list
    at least one id, and every listed id must have its JPEG and its SegmentationClass PNG.

    Args:
        root: the ``VOC2012`` folder (or a ``VOCdevkit`` folder / any folder holding ``VOC2012/``).
        split: the name of ``ImageSets/Segmentation/<split>.txt`` ("train", "val", "trainval", ...).

    Raises:
        InputError: ``root`` does not exist.
        DataFormatError: a folder or the split file is missing, or a listed id has no image or label.
    """

    def __init__(self, root: str | os.PathLike, split: str = "val"):
        self.root = _resolve_root(Path(root))
        self.split = split
        for sub in ("JPEGImages", "SegmentationClass"):
            if not (self.root / sub).is_dir():
                raise DataFormatError(
                    f"{self.root} has no {sub}/ folder",
                    hint="expected the VOC layout: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/",
                )
        self.has_objects = (self.root / "SegmentationObject").is_dir()
        self.ids: list[str] = self._read_split()
        self._check_files()

    def _read_split(self) -> list[str]:
        path = self.root / _SPLIT_DIR / f"{self.split}.txt"
        if not path.is_file():
            available = sorted(p.stem for p in (self.root / _SPLIT_DIR).glob("*.txt"))
            raise DataFormatError(
                f"missing split file {path}",
                hint=f"available splits: {', '.join(available)}" if available else "write one id per line there",
            )
        ids: list[str] = []
        seen: set[str] = set()
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataFormatError(
                f"split file {path} is not UTF-8 text (byte {error.start})", hint="save it as UTF-8"
            ) from None
        for line in text.splitlines():
            image_id = line.split()[0] if line.split() else ""
            if image_id and image_id not in seen:
                ids.append(image_id)
                seen.add(image_id)
        if not ids:
            raise DataFormatError(f"split file {path} lists no image ids")
        return ids

    def _check_files(self) -> None:
        for image_id in self.ids:
            if not self.image_path(image_id).is_file():
                raise DataFormatError(
                    f"image {image_id!r} is listed in {self.split}.txt but {self.image_path(image_id)} is missing",
                    hint="restore the image or remove the id from the split file",
                )
            if not self.class_label_path(image_id).is_file():
                raise DataFormatError(
                    f"image {image_id!r} is listed in {self.split}.txt but has no label "
                    f"{self.class_label_path(image_id)}",
                    hint="the Segmentation splits list only images with SegmentationClass PNGs",
                )

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        return (self.sample(image_id) for image_id in self.ids)

    def sample(self, image_id: str) -> VocSample:
        """The paths of one image (object labels None when the root has no SegmentationObject/)."""
        return VocSample(
            image_id,
            self.image_path(image_id),
            self.class_label_path(image_id),
            self.object_label_path(image_id),
        )

    def image_path(self, image_id: str) -> Path:
        """``JPEGImages/<id>.jpg``."""
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def class_label_path(self, image_id: str) -> Path:
        """``SegmentationClass/<id>.png``."""
        return self.root / "SegmentationClass" / f"{image_id}.png"

    def object_label_path(self, image_id: str) -> Path | None:
        """``SegmentationObject/<id>.png``, or None when the root has no SegmentationObject/ folder."""
        return self.root / "SegmentationObject" / f"{image_id}.png" if self.has_objects else None

    def read_image(self, image_id: str, decoder: str = "pil") -> np.ndarray:
        """The image as ``uint8 [H, W, 3]`` RGB, decoded by ``decoder`` (see :func:`~.images.read_image`)."""
        return read_image(self.image_path(image_id), decoder)

    def read_class_labels(self, image_id: str) -> np.ndarray:
        """Class ids ``uint8 [H, W]`` (0 background, 1..20 classes, 255 void)."""
        return read_label_png(self.class_label_path(image_id))

    def read_object_labels(self, image_id: str) -> np.ndarray:
        """Instance ids ``uint8 [H, W]`` (0 background, 1..n objects, 255 void)."""
        path = self.object_label_path(image_id)
        if path is None:
            raise DataFormatError(
                f"{self.root} has no SegmentationObject/ folder",
                hint="use the class labels, or a VOC root with instance PNGs",
            )
        return read_label_png(path)


def seven_class_labels(labels: np.ndarray) -> np.ndarray:
    """Keep background, void and the 7 MaskContrast classes; every other class becomes void (255).

    Args:
        labels: uint8 [H, W] VOC class ids.

    Returns:
        uint8 [H, W] with the same ids for 0, 255 and :data:`VOC7_CLASS_IDS`, 255 elsewhere.
    """
    keep = np.zeros(256, dtype=bool)
    keep[[0, VOID, *VOC7_CLASS_IDS]] = True
    labels = np.asarray(labels, dtype=np.uint8)
    return np.where(keep[labels], labels, VOID).astype(np.uint8)


def write_voc_sample(
    root: str | os.PathLike,
    image_id: str,
    image: np.ndarray,
    class_labels: np.ndarray,
    object_labels: np.ndarray | None = None,
) -> None:
    """Write one image in the VOC layout (each file atomically).

    Args:
        root: the VOC root (created if missing).
        image_id: file stem, e.g. ``"2007_000032"``.
        image: uint8 [H, W, 3] RGB, written as ``JPEGImages/<id>.jpg``.
        class_labels: uint8 [H, W] class ids (255 void), written as an indexed PNG.
        object_labels: optional uint8 [H, W] instance ids (255 void), written to SegmentationObject/.
    """
    root = Path(root)
    size = image.shape[:2]
    for name, labels in (("class_labels", class_labels), ("object_labels", object_labels)):
        if labels is not None and labels.shape != size:
            raise InputError(f"{name} of {image_id!r} have shape {labels.shape}, the image is {size}")
    write_image(root / "JPEGImages" / f"{image_id}.jpg", image)
    write_label_png(root / "SegmentationClass" / f"{image_id}.png", class_labels)
    if object_labels is not None:
        write_label_png(root / "SegmentationObject" / f"{image_id}.png", object_labels)


def write_voc_image_set(root: str | os.PathLike, ids: list[str], split: str) -> Path:
    """Write ``ImageSets/Segmentation/<split>.txt`` listing ``ids``; returns its path."""
    path = Path(root) / _SPLIT_DIR / f"{split}.txt"
    with atomic_open(path, "w") as handle:
        handle.write("".join(f"{image_id}\n" for image_id in ids))
    return path


def _resolve_root(root: Path) -> Path:
    """Accept the VOC2012 folder itself, or a folder holding ``VOC2012/`` (e.g. VOCdevkit)."""
    if not root.is_dir():
        raise InputError(f"VOC root not found: {root}", hint="pass the folder holding JPEGImages/ (VOC2012)")
    if (root / "JPEGImages").is_dir():
        return root
    for candidate in (root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    return root
