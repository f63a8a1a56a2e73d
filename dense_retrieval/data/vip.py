"""The VIP layout (Video Instance-level Parsing, Zhou et al., ACM MM 2018; its VIP_Fine part).

    ROOT/Images/<video>/<frame>.jpg          the frames, sorted by name
    ROOT/Category_ids/<video>/<frame>.png    part ids 0..19 (0 background, 255 void) on the annotated frames
    ROOT/lists/val_videos.txt                one video name per line

Only the frames with a Category_ids PNG are scored; in VIP_Fine every frame of Images/ has one (the
annotated frames were sampled every 25 frames of the source videos). A run propagates from the first
annotated frame through every later frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, InputError
from ..labels import VOID
from ..records import check_entry_name
from .atomic import atomic_open
from .images import write_image
from .masks import read_label_png

CLASSES = (
    "background",
    "hat",
    "hair",
    "sun-glasses",
    "upper-clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "gloves",
    "scarf",
    "skirt",
    "torso-skin",
    "face",
    "right-arm",
    "left-arm",
    "right-leg",
    "left-leg",
    "right-shoe",
    "left-shoe",
)
"""VIP's 20 part classes, by id (CRW's eval_vip.py lists the same)."""

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class VipVideo:
    """One video: every frame from the first annotated one on, and which of them are annotated."""

    name: str
    frames: tuple[Path, ...]
    annotations: dict[str, Path]  # frame stem -> Category_ids PNG

    @property
    def frame_names(self) -> tuple[str, ...]:
        return tuple(p.stem for p in self.frames)

    @property
    def annotated(self) -> tuple[str, ...]:
        """Stems of the annotated frames, in frame order (the first is the starting annotation)."""
        return tuple(stem for stem in self.frame_names if stem in self.annotations)


class VipDataset:
    """The videos of one VIP list.

    Args:
        root: the folder holding Images/, Category_ids/ and lists/ (VIP_Fine).
        video_list: the list file of video names (default ``root/lists/val_videos.txt``).
    """

    def __init__(self, root: str | os.PathLike, video_list: str | os.PathLike | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"VIP root not found: {self.root}", hint="pass the VIP_Fine folder holding Images/")
        for sub in ("Images", "Category_ids"):
            if not (self.root / sub).is_dir():
                raise DataFormatError(
                    f"{self.root} has no {sub}/ folder",
                    hint="expected the VIP_Fine layout: Images/<video>/<frame>.jpg, Category_ids/<video>/<frame>.png",
                )
        self.list_path = Path(video_list) if video_list is not None else self.root / "lists" / "val_videos.txt"
        self.videos: list[str] = self._read_list()

    def _read_list(self) -> list[str]:
        if not self.list_path.is_file():
            raise DataFormatError(f"missing video list {self.list_path}", hint="pass --list FILE (one video per line)")
        try:
            text = self.list_path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataFormatError(f"video list {self.list_path} is not UTF-8 text (byte {error.start})") from None
        names: list[str] = []
        for line in text.splitlines():
            name = line.strip()
            if name and name not in names:
                names.append(check_entry_name(name, f"video list {self.list_path}"))  # names become folders
        if not names:
            raise DataFormatError(f"video list {self.list_path} names no video")
        return names

    def video(self, name: str) -> VipVideo:
        """Frames from the first annotated one on. Raises DataFormatError without frames or annotations."""
        folder = self.root / "Images" / name
        labels = self.root / "Category_ids" / name
        if not folder.is_dir():
            raise DataFormatError(f"video {name!r} has no frames folder {folder}")
        frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        annotations = {p.stem: p for p in labels.glob("*.png")} if labels.is_dir() else {}
        annotated = [i for i, p in enumerate(frames) if p.stem in annotations]
        if not annotated:
            raise DataFormatError(
                f"video {name!r} has no annotated frame (no Category_ids/{name}/<frame>.png matches a frame)",
                hint="each video needs the part annotation of its first frame",
            )
        kept = tuple(frames[annotated[0] :])
        stems = {p.stem for p in kept}
        return VipVideo(name, kept, {stem: path for stem, path in annotations.items() if stem in stems})

    def read_parts(self, path: str | os.PathLike, num_classes: int = len(CLASSES)) -> np.ndarray:
        """An annotation as ``uint8 [H, W]`` part ids, checked: ids ``0..num_classes-1`` or 255 (void)."""
        labels = read_label_png(path)
        bad = (labels >= num_classes) & (labels != VOID)
        if bad.any():
            raise DataFormatError(
                f"part annotation {path} holds id {int(labels[bad][0])}; VIP ids are 0..{num_classes - 1} (255 void)",
                hint="use the grayscale Category_ids PNGs",
            )
        return labels

    def inputs(self, names: Sequence[str]) -> list[Path]:
        """What a run over ``names`` reads: their frame and annotation folders and the list file."""
        return [*(self.root / kind / name for name in names for kind in ("Images", "Category_ids")), self.list_path]


def write_vip_video(
    root: str | os.PathLike, name: str, frames: Sequence[np.ndarray], parts: dict[int, np.ndarray]
) -> None:
    """Write one video in the VIP_Fine layout: frames ``uint8 [H, W, 3]`` as ``<12-digit number>.jpg``,
    and ``parts`` (frame index -> ``uint8 [H, W]`` part ids) as grayscale Category_ids PNGs."""
    from PIL import Image

    from .atomic import atomic_path

    root = Path(root)
    for index, frame in enumerate(frames):
        write_image(root / "Images" / name / f"{index + 1:012d}.jpg", frame, quality=95)
    for index, labels in parts.items():
        target = root / "Category_ids" / name / f"{index + 1:012d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8)).save(tmp, format="PNG")  # grayscale "L"


def write_video_list(root: str | os.PathLike, names: Sequence[str], split: str = "val") -> Path:
    """Write ``lists/<split>_videos.txt`` naming ``names``."""
    path = Path(root) / "lists" / f"{split}_videos.txt"
    with atomic_open(path, "w") as handle:
        handle.write("".join(f"{name}\n" for name in names))
    return path
