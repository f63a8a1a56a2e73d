"""Small synthetic datasets with known ground truth, written in the exact DAVIS and VOC layouts.

Objects of a few VOC classes, each textured with a crop of a real photo of its kind (see
:mod:`.synth_assets`) and drawn with a silhouette of its own, are placed over photo backgrounds.

* DAVIS: 1-3 objects per sequence move smoothly (the camera pans slowly), change scale and pass in
  front of each other; the annotation records the visible object. Every object is visible in frame 0.
* VOC: 1-3 objects per image, SegmentationClass/SegmentationObject PNGs with a void (255) band on
  every object boundary as in the real dataset.

The generator records its parameters and the ground truth in ``synth.json``. Output is a function of
the parameters and the seed only (byte-identical reruns).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import InputError, OutputExistsError
from ...labels import VOID
from ...progress import track
from ..atomic import atomic_directory, atomic_path, write_json
from ..davis import write_davis_sequence, write_image_set
from ..images import write_image
from ..masks import write_label_png
from ..voc import write_voc_image_set, write_voc_sample
from .assets import BACKGROUNDS, SYNTH_CLASSES, SynthClass
from .scenes import boundary_band, plan_sequence, render_sequence, render_voc_image

SYNTH_VERSION = 1
MANIFEST = "synth.json"
_DEFAULT_OBJECT_COUNTS = (2, 3, 1)


def make_synthetic_davis(
    out: str | os.PathLike,
    num_sequences: int = 3,
    num_frames: int = 20,
    size: tuple[int, int] = (240, 427),
    year: str = "2017",
    seed: int = 0,
    widths: Sequence[int] | None = None,
    objects_per_sequence: Sequence[int] | None = None,
    train_sequences: int = 0,
    overwrite: bool = False,
) -> dict:
    """Write a synthetic DAVIS dataset (480p layout) to ``out``.

    Args:
        out: the dataset root to create (built in a temporary folder, renamed when complete).
        num_sequences: sequences listed in ``ImageSets/<year>/val.txt``.
        num_frames: frames per sequence.
        size: (H, W) of the frames.
        year: "2017" (indexed PNGs, object ids 1..n) or "2016" (one object, 0/255 PNGs).
        seed: everything is a function of the parameters and this seed.
        widths: frame widths per sequence (cycled), overriding ``size[1]``; e.g. (854, 910, 1152) with
            H=480 mimics DAVIS's wider sequences.
        objects_per_sequence: objects in each sequence (cycled), 1-3; default 2, 3, 1, 2, 3, ... (2017)
            and 1 (2016).
        train_sequences: extra sequences listed in ``ImageSets/<year>/train.txt``.
        overwrite: replace ``out`` if it exists and is not empty.

    Returns:
        The manifest written to ``synth.json``: parameters and, per sequence, its objects (id, class),
        size, the frames where an object is partly hidden by another, and the smallest visible fraction.

    Raises:
        InputError: a parameter out of range. OutputExistsError: ``out`` is not empty.
    """
    year = str(year)
    height, width = _check_size(size)
    _check_range("num_sequences", num_sequences, 1, 1000)
    _check_range("num_frames", num_frames, 1, 10000)
    _check_range("train_sequences", train_sequences, 0, 1000)
    if year not in ("2016", "2017"):
        raise InputError(f"unknown DAVIS year {year!r}", hint="use 2016 or 2017")
    counts = list(objects_per_sequence or ((1,) if year == "2016" else _DEFAULT_OBJECT_COUNTS))
    for count in counts:
        _check_range("objects per sequence", count, 1, 1 if year == "2016" else 3)
    widths = [width] if not widths else [int(w) for w in widths]
    for w in widths:
        _check_range("width", w, 32, 8192)
    _refuse_non_empty(out, overwrite)
    total = num_sequences + train_sequences
    params = {
        "num_sequences": num_sequences,
        "num_frames": num_frames,
        "size": [height, width],
        "year": year,
        "seed": seed,
        "widths": widths,
        "objects_per_sequence": counts,
        "train_sequences": train_sequences,
    }
    records = []
    with atomic_directory(out) as root:
        for index in track(range(total), total=total, desc="synth davis", unit="seq"):
            rng = np.random.default_rng((seed, index))
            split = "val" if index < num_sequences else "train"
            frame_size = (height, widths[index % len(widths)])
            tracks, stats = plan_sequence(rng, frame_size, num_frames, counts[index % len(counts)])
            name = f"synth-{index:02d}-" + "-".join(t.spec.name for t in tracks)
            background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
            frames, labels = render_sequence(rng, frame_size, num_frames, tracks, background, binary=year == "2016")
            write_davis_sequence(root, name, frames, labels, year=year)
            records.append(
                {
                    "name": name,
                    "split": split,
                    "size": list(frame_size),
                    "num_frames": num_frames,
                    "background": background,
                    **stats,
                    "objects": [_object_record(i + 1, t.spec) for i, t in enumerate(tracks)],
                }
            )
        write_image_set(root, [r["name"] for r in records if r["split"] == "val"], year=year, split="val")
        if train_sequences:
            write_image_set(root, [r["name"] for r in records if r["split"] == "train"], year=year, split="train")
        manifest = _manifest("davis", params, sequences=records)
        write_json(root / MANIFEST, manifest)
    return manifest


def make_synthetic_voc(
    out: str | os.PathLike,
    num_train: int = 24,
    num_val: int = 16,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    max_objects: int = 3,
    void_radius: int | None = None,
    overwrite: bool = False,
    trainaug: bool = False,
) -> dict:
    """Write a synthetic PASCAL VOC segmentation set to ``out``.

    Args:
        out: the VOC root to create (built in a temporary folder, renamed when complete).
        num_train: images listed in ``ImageSets/Segmentation/train.txt``.
        num_val: images listed in ``val.txt``.
        size: image size, S or (H, W).
        seed: everything is a function of the parameters and this seed.
        max_objects: objects per image are drawn from 1..max_objects (at most 3).
        void_radius: half-width in pixels of the void band on object boundaries; default
            ``max(1, round(min(H, W) / 200))`` (VOC's ~5-pixel band at 500 pixels).
        overwrite: replace ``out`` if it exists and is not empty.
        trainaug: also write the SBD-augmented layout of dense retrieval's VOC protocol: the train
            images' labels in ``SegmentationClassAug/`` and their ids in ``trainaug.txt``.

    Returns:
        The manifest written to ``synth.json`` (parameters; per image its split and objects).
    """
    height, width = _check_size((size, size) if isinstance(size, int) else size)
    _check_range("num_train", num_train, 1, 100000)
    _check_range("num_val", num_val, 1, 100000)
    _check_range("max_objects", max_objects, 1, 3)
    radius = max(1, round(min(height, width) / 200)) if void_radius is None else void_radius
    _check_range("void_radius", radius, 0, 32)
    _refuse_non_empty(out, overwrite)
    params = {
        "num_train": num_train,
        "num_val": num_val,
        "size": [height, width],
        "seed": seed,
        "max_objects": max_objects,
        "void_radius": radius,
        **({"trainaug": True} if trainaug else {}),
    }
    records = []
    with atomic_directory(out) as root:
        for index in track(range(num_train + num_val), total=num_train + num_val, desc="synth voc", unit="img"):
            rng = np.random.default_rng((seed, index))
            image_id = f"synth_{index:06d}"
            image, instances, specs, background = render_voc_image(rng, (height, width), max_objects)
            classes = np.zeros_like(instances)
            for k, spec in enumerate(specs, start=1):
                classes[instances == k] = spec.voc_id
            void = boundary_band(instances, radius)
            instances[void] = VOID
            classes[void] = VOID
            write_voc_sample(root, image_id, image, classes, instances)
            if trainaug and index < num_train:
                write_label_png(root / "SegmentationClassAug" / f"{image_id}.png", classes)
            records.append(
                {
                    "id": image_id,
                    "split": "train" if index < num_train else "val",
                    "background": background,
                    "objects": [_object_record(k, spec) for k, spec in enumerate(specs, start=1)],
                }
            )
        for split in ("train", "val"):
            write_voc_image_set(root, [r["id"] for r in records if r["split"] == split], split)
        if trainaug:
            write_voc_image_set(root, [r["id"] for r in records if r["split"] == "train"], "trainaug")
        manifest = _manifest("voc", params, images=records)
        write_json(root / MANIFEST, manifest)
    return manifest


ADE20K_IDS = {"aeroplane": 91, "bottle": 99, "car": 21, "cat": 127, "person": 13, "pottedplant": 18}
"""The ADE20K class (SceneParse150 id) each synthetic object becomes: airplane, bottle, car, animal, person, plant."""
ADE20K_BACKGROUND_IDS = {"brick": 1, "gravel": 14, "moon": 3, "coins": 4, "immunohistochemistry": 0, "page": 101}
"""Backgrounds as ADE20K "stuff": wall, earth, sky, floor, "other" (0: ignored when scored), poster."""


def make_synthetic_ade20k(
    out: str | os.PathLike,
    num_train: int = 24,
    num_val: int = 8,
    size: int = 256,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Write a synthetic ADE20K set in the ADEChallengeData2016 layout to ``out``.

    ``images/{training,validation}/ADE_{train,val}_NNNNNNNN.jpg`` and grayscale label PNGs of the same stem in
    ``annotations/``: the VOC scenes of :func:`make_synthetic_voc` with their objects and backgrounds as
    SceneParse150 classes (:data:`ADE20K_IDS`, :data:`ADE20K_BACKGROUND_IDS`) and a one-pixel band of 0
    ("other", the class ADE20K's evaluation ignores) on object boundaries.

    Returns:
        The manifest written to ``synth.json``.
    """
    height, width = _check_size((size, size))
    _check_range("num_train", num_train, 1, 100000)
    _check_range("num_val", num_val, 1, 100000)
    _refuse_non_empty(out, overwrite)
    params = {"num_train": num_train, "num_val": num_val, "size": [height, width], "seed": seed}
    records = []
    with atomic_directory(out) as root:
        for index in track(range(num_train + num_val), total=num_train + num_val, desc="synth ade20k", unit="img"):
            rng = np.random.default_rng((seed, index))
            image, instances, specs, background = render_voc_image(rng, (height, width), 3)
            classes = np.full(instances.shape, ADE20K_BACKGROUND_IDS[background], np.uint8)
            for k, spec in enumerate(specs, start=1):
                classes[instances == k] = ADE20K_IDS[spec.name]
            classes[boundary_band(instances, 1)] = 0
            train = index < num_train
            split, stem = ("training", "train") if train else ("validation", "val")
            name = f"ADE_{stem}_{index + 1:08d}"
            write_image(root / "images" / split / f"{name}.jpg", image)
            with atomic_path(root / "annotations" / split / f"{name}.png") as tmp:
                Image.fromarray(classes).save(tmp, format="PNG")  # uint8 [H, W]: mode L
            records.append({"id": name, "split": split, "background": background, "objects": [s.name for s in specs]})
        manifest = _manifest("ade20k", params, images=records)
        write_json(root / MANIFEST, manifest)
    return manifest


def _object_record(object_id: int, spec: SynthClass) -> dict:
    return {
        "id": object_id,
        "class": spec.name,
        "voc_id": spec.voc_id,
        "texture": f"skimage.data.{spec.source}",
    }


def _manifest(kind: str, params: dict, **records: list) -> dict:
    return {
        "generator": "dense_retrieval.data.synth",
        "version": SYNTH_VERSION,
        "kind": kind,
        "params": params,
        "classes": [{"name": s.name, "voc_id": s.voc_id, "texture": f"skimage.data.{s.source}"} for s in SYNTH_CLASSES],
        **records,
    }


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2:
        raise InputError(f"size must be (H, W), got {size!r}")
    height, width = int(size[0]), int(size[1])
    _check_range("height", height, 32, 8192)
    _check_range("width", width, 32, 8192)
    return height, width


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InputError(f"{name} must be between {low} and {high}, got {value}")


def _refuse_non_empty(out: str | os.PathLike, overwrite: bool) -> None:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output {out} is a file, not a folder", hint="choose a new folder name")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"output folder {out} exists and is not empty", hint="choose a new folder or pass --overwrite"
        )
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise OutputExistsError(
            f"{out} holds files that are not a synthetic dataset; --overwrite replaces only one",
            hint="choose a new folder",
        )
