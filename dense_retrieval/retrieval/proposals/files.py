"""Proposals read from files: VOC ground-truth PNGs, saliency maps, COCO-format JSON."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ...data.images import open_checked
from ...data.masks import read_label_png
from ...errors import DataFormatError, InputError
from ...labels import VOID
from ..segments import check_rle, decode_rle

_MAP_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def gt_masks(
    image: Path, size: tuple[int, int], root: str | os.PathLike | None, kind: str = "class", background: bool = False
) -> tuple[np.ndarray, list[int | None]]:
    """Ground-truth masks of ``image`` from VOC label PNGs.

    Args:
        image: the image file; its stem names the label PNG.
        size: (H, W) the PNG must have.
        root: VOC root, folder of PNGs, or None for the VOC layout around the image.
        kind: ``"class"`` (one mask per class id; 0 only with ``background``) or ``"object"``
            (one mask per object id of SegmentationObject; label = majority class when
            SegmentationClass is there too). Void (255) is never part of a mask.

    Returns:
        masks bool [K, H, W] and their K labels.
    """
    folder = "SegmentationClass" if kind == "class" else "SegmentationObject"
    labels = _check_size(read_label_png(_find_label_png(image, root, folder)), size, image, "ground truth")
    ids = [int(i) for i in np.unique(labels) if i != VOID and (i != 0 or (kind == "class" and background))]
    masks = labels[None] == np.asarray(ids, dtype=np.uint8)[:, None, None]
    if kind == "class":
        return masks, list(ids)
    class_png = _find_label_png(image, root, "SegmentationClass", required=False)
    if class_png is None:
        return masks, [None] * len(ids)
    classes = _check_size(read_label_png(class_png), size, image, "ground truth")
    return masks, [majority_label(classes[mask]) for mask in masks]


def majority_label(values: np.ndarray, ignore: tuple[int, ...] = (0, VOID)) -> int | None:
    """The most frequent value not in ``ignore`` (ties: the smaller id), or None if there is none."""
    counts = np.bincount(values.ravel().astype(np.int64), minlength=256)
    counts[list(ignore)] = 0
    return int(counts.argmax()) if counts.any() else None


def saliency_masks(
    image: Path, size: tuple[int, int], folder: str | os.PathLike, threshold: float = 0.5
) -> tuple[np.ndarray, list[int | None], np.ndarray]:
    """One mask per image from a saliency map named like the image: value / 255 > ``threshold``.

    Returns:
        masks bool [1, H, W], their labels ([None]) and the soft weights float32 [1, H, W]: the saliency
        value where it is above ``threshold``, 0 elsewhere (MaskContrast's ``sal * (sal > 0.5)``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"saliency folder not found: {folder}", hint="pass --saliency DIR with one map per image")
    candidates = [folder / f"{image.stem}{suffix}" for suffix in _MAP_SUFFIXES]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise InputError(f"no saliency map for {image.name} in {folder}", hint=f"expected {image.stem}.png")
    try:
        with open_checked(found, "saliency map") as handle:
            values = np.asarray(handle.convert("L"), dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataFormatError(f"unreadable saliency map {found}: {error}") from None
    values = _check_size(values, size, image, f"saliency map {found.name}")
    salient = values > threshold
    return salient[None], [None], np.where(salient, values, np.float32(0))[None]


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of bool or float32 [K, H0, W0] masks to ``size`` (H, W) (PIL, as label maps)."""
    height, width = size
    out = np.zeros((len(masks), height, width), dtype=masks.dtype)
    for index, mask in enumerate(masks):
        source = mask.astype(np.uint8) if mask.dtype == bool else mask
        out[index] = np.asarray(Image.fromarray(source).resize((width, height), Image.NEAREST)).astype(masks.dtype)
    return out


class CocoProposals:
    """Masks from a COCO-format JSON (``images``, ``annotations`` with RLE or polygon ``segmentation``).

    Images are matched by file name (the last part of ``file_name``). Malformed JSON, missing keys,
    annotations of unknown images and undecodable segmentations raise a one-line DataFormatError.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"COCO file not found: {self.path}")
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise DataFormatError(f"malformed COCO JSON {self.path}: {error}", hint="check the file") from None
        self._entries = self._index(document)

    def _index(self, document: object) -> dict[str, tuple[dict, list[dict]]]:
        if not isinstance(document, dict) or not isinstance(document.get("images"), list):
            raise DataFormatError(f"COCO file {self.path} has no 'images' list", hint="is it COCO instances format?")
        if not isinstance(document.get("annotations"), list):
            raise DataFormatError(f"COCO file {self.path} has no 'annotations' list")
        by_id: dict[object, dict] = {}
        entries: dict[str, tuple[dict, list[dict]]] = {}
        for entry in document["images"]:
            if not isinstance(entry, dict) or not {"id", "file_name", "height", "width"} <= set(entry):
                raise DataFormatError(
                    f"COCO file {self.path}: image entry {str(entry)[:80]} lacks id/file_name/height/width"
                )
            if not isinstance(entry["id"], (int, str)) or isinstance(entry["id"], bool):
                raise DataFormatError(f"COCO file {self.path}: image id {entry['id']!r} is not a number or a string")
            for key in ("height", "width"):
                value = entry[key]
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise DataFormatError(f"COCO file {self.path}: image {entry['id']!r} has {key} {value!r}")
            name = Path(str(entry["file_name"])).name
            if name in entries:
                raise DataFormatError(f"COCO file {self.path} lists image file name {name!r} twice")
            entries[name] = (entry, [])
            by_id[entry["id"]] = entry
        for annotation in document["annotations"]:
            if not isinstance(annotation, dict) or "segmentation" not in annotation or "image_id" not in annotation:
                raise DataFormatError(f"COCO file {self.path}: annotation {str(annotation)[:80]} lacks segmentation")
            image_id = annotation["image_id"]
            entry = by_id.get(image_id) if isinstance(image_id, (int, str)) else None
            if entry is None:
                raise DataFormatError(
                    f"COCO file {self.path}: annotation {annotation.get('id')} references missing image id "
                    f"{annotation['image_id']!r}"
                )
            entries[Path(str(entry["file_name"])).name][1].append(annotation)
        return entries

    def check_images(self, images: list[Path]) -> None:
        """Every image the JSON lists must be among ``images`` (matched by file name)."""
        names = {Path(p).name for p in images}
        missing = [name for name in self._entries if name not in names]
        if missing:
            raise DataFormatError(
                f"COCO file {self.path} references image {missing[0]!r} ({len(missing)} missing in all) "
                f"that is not among the {len(images)} images given",
                hint="pass the folder that holds the COCO images, or remove those entries from the JSON",
            )

    def masks(self, image: Path, size: tuple[int, int]) -> tuple[np.ndarray, list[int | None]]:
        """Masks and category ids of ``image``; none when the JSON does not list it."""
        if image.name not in self._entries:
            return np.zeros((0, *size), dtype=bool), []
        entry, annotations = self._entries[image.name]
        declared = (int(entry["height"]), int(entry["width"]))
        if declared != tuple(size):
            raise DataFormatError(
                f"COCO file {self.path} gives {image.name} size {declared[0]}x{declared[1]}, "
                f"but the image is {size[0]}x{size[1]}"
            )
        masks = [self._decode(a["segmentation"], size, a.get("id")) for a in annotations]
        labels = [self._label(a) for a in annotations]
        return (np.stack(masks) if masks else np.zeros((0, *size), dtype=bool)), labels

    def _label(self, annotation: dict) -> int | None:
        value = annotation.get("category_id")
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise DataFormatError(f"COCO file {self.path}: annotation {annotation.get('id')} has category {value!r}")
        return value

    def _decode(self, segmentation: object, size: tuple[int, int], annotation_id: object) -> np.ndarray:
        from pycocotools import mask as mask_utils

        height, width = size
        where = f"COCO file {self.path}, annotation {annotation_id}"
        try:
            if isinstance(segmentation, list):
                _check_polygons(segmentation, height, width, where)
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
            elif isinstance(segmentation, dict) and {"size", "counts"} <= set(segmentation):
                rle = check_rle(segmentation, where)
                if rle["size"] != [height, width]:
                    raise DataFormatError(
                        f"{where}: RLE size {segmentation['size']} is not the image's {[height, width]}"
                    )
            else:
                raise DataFormatError(f"{where}: segmentation is neither polygons nor RLE")
            return decode_rle(rle, where)
        except DataFormatError:
            raise
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            raise DataFormatError(f"{where}: undecodable segmentation ({error})") from None


def _check_polygons(polygons: list, height: int, width: int, where: str) -> None:
    """COCO polygons within the image (one pixel of slack), every coordinate a finite number.

    pycocotools crashes the process on coordinates past about 1e10; nothing unchecked reaches it.
    """
    if not polygons or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in polygons):
        raise DataFormatError(f"{where}: polygons must be lists of at least 3 x,y pairs")
    for polygon in polygons:
        for index, value in enumerate(polygon):
            limit = width if index % 2 == 0 else height
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or not -1 <= value <= limit + 1:
                axis = "x" if index % 2 == 0 else "y"
                raise DataFormatError(
                    f"{where}: polygon coordinate {axis} = {value!r} is outside the {width}x{height} image",
                    hint="COCO coordinates are pixels within the image",
                )


def _find_label_png(image: Path, root: str | os.PathLike | None, folder: str, required: bool = True) -> Path | None:
    if root is None:
        candidate = image.parent.parent / folder / f"{image.stem}.png"
    else:
        root = Path(root)
        candidate = root / folder / f"{image.stem}.png" if (root / folder).is_dir() else root / f"{image.stem}.png"
    if candidate.is_file():
        return candidate
    if not required:
        return None
    raise InputError(f"no ground-truth mask for {image.name}: {candidate} not found", hint="pass --gt-root VOC_ROOT")


def _check_size(array: np.ndarray, size: tuple[int, int], image: Path, what: str) -> np.ndarray:
    if tuple(array.shape[:2]) != tuple(size):
        raise DataFormatError(
            f"{what} of {image.name} is {array.shape[0]}x{array.shape[1]} but the image is {size[0]}x{size[1]}",
            hint="masks must have the size of their image",
        )
    return array
