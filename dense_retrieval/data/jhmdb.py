"""The JHMDB layout (Jhuang et al., ICCV 2013): frames, puppet joint positions and split files.

    ROOT/Rename_Images/<action>/<video>/00001.png ...         the frames (1-based numbers)
    ROOT/joint_positions/<action>/<video>/joint_positions.mat  ``pos_img``: 2 x 15 x T, 1-based (x, y) pixels
    ROOT/splits/<action>_test_split<N>.txt                     "<video>.avi 1" (train) or "<video>.avi 2" (test)

(the full-body subset's files, ``sub_splits/<action>_test_split_<N>.txt``, read the same way with
``splits=ROOT/sub_splits``). Joints come back zero-based, ``(x, y)`` per frame, as CRW reads them
(``pos_img - 1``). ``.mat`` files are read and written with scipy.io.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, InputError
from ..records import check_entry_name
from .atomic import atomic_open, atomic_path
from .images import write_image

JOINTS = (
    "neck",
    "belly",
    "face",
    "right shoulder",
    "left shoulder",
    "right hip",
    "left hip",
    "right elbow",
    "left elbow",
    "right knee",
    "left knee",
    "right wrist",
    "left wrist",
    "right ankle",
    "left ankle",
)
"""JHMDB's 15 puppet joints, in the order of ``pos_img``."""

SKELETON = (
    (0, 1),
    (0, 2),
    (0, 3),
    (0, 4),
    (1, 5),
    (1, 6),
    (3, 7),
    (4, 8),
    (5, 9),
    (6, 10),
    (7, 11),
    (8, 12),
    (9, 13),
    (10, 14),
)
"""Bones as pairs of joint indices: neck to belly, face and shoulders; belly to hips; then the limbs."""

TEST = 2
"""The split-file mark of a test video (1: training)."""

_SPLIT_FILE = re.compile(r"^(?P<action>.+)_test_split_?(?P<split>\d+)\.txt$")


@dataclass(frozen=True)
class JhmdbVideo:
    """One clip: its action, frames (sorted by number) and joint file."""

    name: str
    action: str
    frames: tuple[Path, ...]
    joints_path: Path


class JhmdbDataset:
    """The test videos of one JHMDB split.

    Args:
        root: the folder holding Rename_Images/ and joint_positions/.
        split: the split number (1, 2 or 3).
        splits: the folder of split files (default ``root/splits``).
    """

    def __init__(self, root: str | os.PathLike, split: int = 1, splits: str | os.PathLike | None = None):
        self.root = Path(root)
        self.split = int(split)
        self.splits = Path(splits) if splits is not None else self.root / "splits"
        if not self.root.is_dir():
            raise InputError(f"JHMDB root not found: {self.root}", hint="pass the folder holding Rename_Images/")
        for sub in ("Rename_Images", "joint_positions"):
            if not (self.root / sub).is_dir():
                raise DataFormatError(
                    f"{self.root} has no {sub}/ folder",
                    hint="expected JHMDB: Rename_Images/<action>/<video>/, joint_positions/<action>/<video>/",
                )
        self.split_files, self._actions = self._read_splits()
        self.videos: list[str] = list(self._actions)

    def _read_splits(self) -> tuple[list[Path], dict[str, str]]:
        if not self.splits.is_dir():
            raise DataFormatError(f"no split folder {self.splits}", hint="unpack JHMDB's splits, or pass --splits DIR")
        files = sorted(
            p for p in self.splits.iterdir() if (m := _SPLIT_FILE.match(p.name)) and int(m["split"]) == self.split
        )
        if not files:
            raise DataFormatError(
                f"{self.splits} holds no split {self.split} files (<action>_test_split{self.split}.txt)",
                hint="check --split (1, 2 or 3) and --splits",
            )
        actions: dict[str, str] = {}
        for path in files:
            action = _SPLIT_FILE.match(path.name)["action"]
            for number, line in enumerate(_text(path).splitlines(), start=1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 2 or not fields[0].endswith(".avi") or fields[1] not in ("1", "2"):
                    raise DataFormatError(
                        f"{path} line {number}: {line.strip()[:80]!r} is not '<video>.avi 1|2'",
                        hint="JHMDB split files list one clip per line, 1 for training, 2 for testing",
                    )
                if int(fields[1]) != TEST:
                    continue
                name = check_entry_name(fields[0][: -len(".avi")], f"split file {path}")  # names become folders
                if name in actions and actions[name] != action:
                    raise DataFormatError(f"video {name!r} is listed for both {actions[name]} and {action}")
                actions[name] = action
        if not actions:
            raise DataFormatError(f"the split {self.split} files in {self.splits} list no test video (mark 2)")
        return files, actions

    def action(self, name: str) -> str:
        """The action (class folder) of video ``name``."""
        return self._actions[name]

    def video(self, name: str) -> JhmdbVideo:
        """Frame and joint paths of ``name``. Raises DataFormatError if either is missing."""
        action = self._actions[name]
        folder = self.root / "Rename_Images" / action / name
        if not folder.is_dir():
            raise DataFormatError(f"video {name!r} has no frames folder {folder}")
        frames = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"), key=_frame_number)
        if not frames:
            raise DataFormatError(f"video {name!r} has no PNG frames in {folder}")
        joints = self.root / "joint_positions" / action / name / "joint_positions.mat"
        if not joints.is_file():
            raise DataFormatError(f"video {name!r} has no joint file {joints}")
        return JhmdbVideo(name, action, tuple(frames), joints)

    def joints(self, name: str) -> np.ndarray:
        """The ground truth of ``name``: float64 ``[T, 15, 2]`` zero-based ``(x, y)`` pixels."""
        return read_joints(self.video(name).joints_path)

    def inputs(self, names: Sequence[str]) -> list[Path]:
        """What a run over ``names`` reads: their frame and joint folders and the split files."""
        folders = [
            self.root / kind / self._actions[name] / name
            for name in names
            for kind in ("Rename_Images", "joint_positions")
        ]
        return [*folders, *self.split_files]


def read_joints(path: str | os.PathLike) -> np.ndarray:
    """``pos_img`` of a joint_positions.mat as float64 ``[T, 15, 2]`` zero-based ``(x, y)`` pixels.

    Raises:
        DataFormatError: unreadable, no ``pos_img``, not ``2 x 15 x T`` or not finite numbers.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        document = loadmat(str(path))
    except (MatReadError, OSError, ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError) as error:
        raise DataFormatError(
            f"unreadable joint file {path}: {error}", hint="re-download JHMDB's joint_positions"
        ) from None
    positions = document.get("pos_img")
    shape = getattr(positions, "shape", None)
    if positions is None or len(shape) != 3 or shape[0] != 2 or shape[1] != len(JOINTS) or shape[2] < 1:
        raise DataFormatError(
            f"joint file {path} has no pos_img of 2 x {len(JOINTS)} x frames (found {shape})",
            hint="JHMDB's joint_positions.mat holds pos_img: (x, y) x 15 joints x frames",
        )
    try:
        values = np.asarray(positions, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataFormatError(f"joint file {path}: pos_img is not numeric") from None
    if not np.isfinite(values).all():
        raise DataFormatError(f"joint file {path}: pos_img holds NaN or infinite values")
    return np.ascontiguousarray(values.transpose(2, 1, 0) - 1.0)


def write_jhmdb_video(
    root: str | os.PathLike, action: str, name: str, frames: Sequence[np.ndarray], joints: np.ndarray
) -> None:
    """Write one clip in the JHMDB layout: frames ``uint8 [H, W, 3]`` as 00001.png ..., and
    ``joints`` float ``[T, 15, 2]`` zero-based ``(x, y)`` as ``pos_img`` (1-based, 2 x 15 x T)."""
    from scipy.io import savemat

    root = Path(root)
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (len(frames), len(JOINTS), 2):
        raise InputError(f"joints must be [{len(frames)}, {len(JOINTS)}, 2], got {joints.shape}")
    for number, frame in enumerate(frames, start=1):
        write_image(root / "Rename_Images" / action / name / f"{number:05d}.png", frame)
    target = root / "joint_positions" / action / name / "joint_positions.mat"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        savemat(str(tmp), {"pos_img": (joints + 1.0).transpose(2, 1, 0)})


def write_split_file(root: str | os.PathLike, action: str, split: int, marks: dict[str, int]) -> Path:
    """Write ``splits/<action>_test_split<N>.txt``: ``marks`` maps video names to 1 (train) or 2 (test)."""
    path = Path(root) / "splits" / f"{action}_test_split{split}.txt"
    with atomic_open(path, "w") as handle:
        handle.write("".join(f"{name}.avi {mark} \n" for name, mark in marks.items()))
    return path


def _frame_number(path: Path) -> tuple[int, str]:
    return (int(path.stem), path.name) if path.stem.isdigit() else (1 << 62, path.name)


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(f"split file {path} is not UTF-8 text (byte {error.start})") from None
