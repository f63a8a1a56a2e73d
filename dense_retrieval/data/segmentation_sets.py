"""Semantic segmentation sets in their own layouts: images with label PNGs and a class count.

Three kinds (``open_split(kind, root, split)``):

``voc``: PASCAL VOC 2012 with the SBD-augmented training labels, 21 classes, 255 void (ignored)::

    VOC2012/JPEGImages/<id>.jpg                      or  VOCSegmentation/images/<id>.jpg   (Hummingbird's)
    VOC2012/SegmentationClassAug/<id>.png  (trainaug)    VOCSegmentation/SegmentationClassAug/<id>.png
    VOC2012/SegmentationClass/<id>.png     (val, ...)    VOCSegmentation/SegmentationClass/<id>.png
    VOC2012/ImageSets/Segmentation/<split>.txt           VOCSegmentation/sets/<split>.txt

  A split named ``trainaug`` (or ``train_aug``) reads SegmentationClassAug, every other split
  SegmentationClass. List lines may be DeepLab's ``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png``
  pairs: the stem of the first field is the id.

``ade20k``: ADEChallengeData2016 (SceneParse150)::

    ADEChallengeData2016/images/{training,validation}/<id>.jpg
    ADEChallengeData2016/annotations/{training,validation}/<id>.png    (0 = "other", 1..150 the classes)

  151 label channels as in open-hummingbird-eval (``get_num_classes() == 151``): "other" (0) is a class
  of the memory like any, and the ground truth's 0 pixels are ignored when scoring (its ignore index 0).

``folder``: any set of images with label PNGs of the same stem and a class count (255 ignored)::

    ROOT/<split>/images/<id>.{jpg,png,...}
    ROOT/<split>/labels/<id>.png                   (values 0 .. C - 1, 255 void)

An ids file (``--train-list``: one id per line, e.g. open-hummingbird-eval's ``file_sets/``) restricts a
split to those ids, in the file's order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, InputError
from ..labels import VOID
from .images import IMAGE_SUFFIXES, read_image
from .masks import read_label_png
from .voc import VOC_CLASSES

KINDS: tuple[str, ...] = ("voc", "ade20k", "folder")
DEFAULT_SPLITS: dict[str, tuple[str, str]] = {
    "voc": ("trainaug", "val"),
    "ade20k": ("training", "validation"),
    "folder": ("train", "val"),
}
"""(memory split, evaluation split) of each kind."""

ADE20K_CLASSES: tuple[str, ...] = (
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car",
    "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)  # fmt: skip
"""SceneParse150's class names, index = label id; 0 is "other" (not one of the 150)."""

_ADE_SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}


@dataclass(frozen=True)
class LabelledImages:
    """One split of a segmentation set: images, their label PNGs, the classes.

    Attributes:
        kind: ``voc``, ``ade20k`` or ``folder``. root: the resolved dataset root. split: its name.
        ids, images, labels: per image, its id and the paths of its image and label PNG.
        num_classes: C, labels are ``0 .. C - 1``.
        ignore_index: the ground-truth value left out of the scores (VOC and folders 255, ADE20K 0).
        class_names: C names.
    """

    kind: str
    root: Path
    split: str
    ids: tuple[str, ...]
    images: tuple[Path, ...]
    labels: tuple[Path, ...]
    num_classes: int
    ignore_index: int
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, index: int, decoder: str = "pil") -> tuple[np.ndarray, np.ndarray]:
        """Image ``uint8 [H, W, 3]`` (decoded by ``decoder``, a recipe's) and labels ``uint8 [H, W]`` of image
        ``index`` (sizes checked)."""
        rgb, labels = read_image(self.images[index], decoder), read_label_png(self.labels[index])
        if labels.shape != rgb.shape[:2]:
            raise DataFormatError(
                f"label PNG {self.labels[index]} is {labels.shape[0]}x{labels.shape[1]}, its image is "
                f"{rgb.shape[0]}x{rgb.shape[1]}",
                hint="labels must have the size of their image",
            )
        return rgb, labels

    def describe(self) -> dict:
        """What the split is, for records: kind, root, split, count, classes."""
        return {
            "kind": self.kind,
            "root": str(self.root),
            "split": self.split,
            "images": len(self.ids),
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
        }


def open_split(
    kind: str,
    root: str | os.PathLike,
    split: str,
    num_classes: int | None = None,
    ids_file: str | os.PathLike | None = None,
) -> LabelledImages:
    """A split of a segmentation set in its own layout (module doc), every file checked present.

    Args:
        kind: ``voc``, ``ade20k`` or ``folder``.
        num_classes: the class count (``folder`` only; VOC has 21, ADE20K 151 label channels).
        ids_file: keep only the ids it lists, in its order.

    Raises:
        InputError: unknown kind, missing root, a class count where none belongs or none where one must.
        DataFormatError: the layout is not there, a listed id lacks its image or label.
    """
    if kind not in KINDS:
        raise InputError(f"unknown dataset kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset root not found: {root}", hint="pass the folder of the dataset")
    if kind != "folder" and num_classes is not None:
        raise InputError(f"--num-classes is for --dataset folder; {kind} has its own classes")
    if kind == "voc":
        found = _voc(root, split)
    elif kind == "ade20k":
        found = _ade20k(root, split)
    else:
        if num_classes is None or not 1 <= num_classes <= 255:
            raise InputError("--dataset folder needs --num-classes C (1..255)", hint="e.g. --num-classes 21")
        found = _folder(root, split, num_classes)
    if ids_file is not None:
        found = _restrict(found, Path(ids_file))
    if not found.ids:
        raise DataFormatError(f"split {split!r} of {found.root} holds no images")
    return found


def read_ids(path: Path) -> list[str]:
    """Image ids from a list file: the stem of each line's first field, in order, duplicates dropped."""
    if not path.is_file():
        raise InputError(f"id list not found: {path}", hint="one image id per line")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(f"id list {path} is not UTF-8 text (byte {error.start})") from None
    ids = [Path(line.split()[0]).stem for line in text.splitlines() if line.split()]
    return list(dict.fromkeys(ids))


def _voc(root: Path, split: str) -> LabelledImages:
    base = _find(root, ("", "VOC2012", "VOCdevkit/VOC2012", "VOCSegmentation"), ("JPEGImages", "images"))
    hummingbird = not (base / "JPEGImages").is_dir()
    image_dir = base / ("images" if hummingbird else "JPEGImages")
    list_file = base / ("sets" if hummingbird else "ImageSets/Segmentation") / f"{split}.txt"
    label_dir = base / ("SegmentationClassAug" if split in ("trainaug", "train_aug") else "SegmentationClass")
    if not label_dir.is_dir():
        raise DataFormatError(f"{base} has no {label_dir.name}/ folder for split {split!r}", hint=_VOC_HINT)
    if not list_file.is_file():
        raise DataFormatError(f"missing split file {list_file}", hint=_VOC_HINT)
    ids = read_ids(list_file)
    images = [image_dir / f"{i}.jpg" for i in ids]
    return _checked("voc", base, split, ids, images, [label_dir / f"{i}.png" for i in ids], 21, VOID, VOC_CLASSES)


_VOC_HINT = "expected VOC2012/{JPEGImages, SegmentationClass[Aug], ImageSets/Segmentation/<split>.txt}"


def _ade20k(root: Path, split: str) -> LabelledImages:
    base = _find(root, ("", "ADEChallengeData2016"), ("images",))
    folder = _ADE_SPLITS.get(split)
    if folder is None:
        raise InputError(f"ADE20K has no split {split!r}", hint="use training or validation")
    image_dir, label_dir = base / "images" / folder, base / "annotations" / folder
    if not image_dir.is_dir() or not label_dir.is_dir():
        raise DataFormatError(
            f"{base} lacks images/{folder}/ or annotations/{folder}/", hint="expected the ADEChallengeData2016 layout"
        )
    ids = sorted(p.stem for p in image_dir.iterdir() if p.suffix.lower() == ".jpg")
    images = [image_dir / f"{i}.jpg" for i in ids]
    labels = [label_dir / f"{i}.png" for i in ids]
    return _checked("ade20k", base, folder, ids, images, labels, len(ADE20K_CLASSES), 0, ADE20K_CLASSES)


def _folder(root: Path, split: str, num_classes: int) -> LabelledImages:
    image_dir, label_dir = root / split / "images", root / split / "labels"
    if not image_dir.is_dir() or not label_dir.is_dir():
        raise DataFormatError(f"{root} lacks {split}/images/ or {split}/labels/", hint="see --help for the layout")
    paths = sorted(p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    ids = [p.stem for p in paths]
    if len(set(ids)) != len(ids):
        raise DataFormatError(f"{image_dir} holds two images of one stem", hint="one image per id")
    names = tuple(f"class {c}" for c in range(num_classes))
    return _checked("folder", root, split, ids, paths, [label_dir / f"{i}.png" for i in ids], num_classes, VOID, names)


def _checked(
    kind: str,
    root: Path,
    split: str,
    ids: list[str],
    images: list[Path],
    labels: list[Path],
    num_classes: int,
    ignore_index: int,
    names: tuple[str, ...],
) -> LabelledImages:
    for image_id, image, label in zip(ids, images, labels, strict=True):
        for path, what in ((image, "image"), (label, "label PNG")):
            if not path.is_file():
                raise DataFormatError(f"{what} of {image_id!r} ({split}) is missing: {path}", hint="restore it")
    return LabelledImages(
        kind, root, split, tuple(ids), tuple(images), tuple(labels), num_classes, ignore_index, tuple(names)
    )


def _restrict(found: LabelledImages, ids_file: Path) -> LabelledImages:
    """Keep the ids of ``ids_file``, in its order; an id the split lacks is an error naming it."""
    position = {image_id: n for n, image_id in enumerate(found.ids)}
    wanted = read_ids(ids_file)
    missing = [i for i in wanted if i not in position]
    if missing:
        raise DataFormatError(
            f"id list {ids_file} names {len(missing)} image(s) split {found.split!r} lacks, e.g. {missing[0]!r}",
            hint="use a list made for this split",
        )
    keep = [position[i] for i in wanted]
    return LabelledImages(
        found.kind,
        found.root,
        found.split,
        tuple(found.ids[n] for n in keep),
        tuple(found.images[n] for n in keep),
        tuple(found.labels[n] for n in keep),
        found.num_classes,
        found.ignore_index,
        found.class_names,
    )


def _find(root: Path, candidates: tuple[str, ...], markers: tuple[str, ...]) -> Path:
    """The first ``root / candidate`` holding one of the ``markers`` folders (else ``root`` itself)."""
    for candidate in candidates:
        base = root / candidate if candidate else root
        if any((base / marker).is_dir() for marker in markers):
            return base
    return root
