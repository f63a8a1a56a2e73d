"""Synthetic JHMDB and VIP sets: walking stick figures with known joints and part labels, in the exact layouts.

* JHMDB: ``Rename_Images/<action>/<video>/00001.png``, ``joint_positions/<action>/<video>/
  joint_positions.mat`` (``pos_img`` 2 x 15 x T, 1-based) and ``splits/<action>_test_split1.txt``
  marking each video 2 (test) or, for ``train_videos`` extra ones, 1.
* VIP: ``Images/<video>/<12-digit frame>.jpg``, grayscale ``Category_ids/<video>/<frame>.png`` part
  ids on every ``annotate_every``-th frame (the first always), ``lists/val_videos.txt``.

One figure per video (:mod:`.figures`) walks over a slowly panning photo background. The generator
records its parameters in ``synth.json``; output is a function of the parameters and the seed only.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ...progress import track
from ..atomic import atomic_directory, write_json
from ..jhmdb import write_jhmdb_video, write_split_file
from ..vip import write_video_list, write_vip_video
from .assets import BACKGROUNDS, background_texture
from .datasets import MANIFEST, _check_range, _check_size, _manifest, _refuse_non_empty
from .figures import plan_figure, render_figure

ACTIONS = ("walk", "run", "wave")
"""Action folders of the synthetic JHMDB set (every video walks; the names only fill the layout)."""


def make_synthetic_jhmdb(
    out: str | os.PathLike,
    num_videos: int = 3,
    num_frames: int = 40,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    train_videos: int = 1,
    overwrite: bool = False,
) -> dict:
    """Write a synthetic JHMDB set (split 1) to ``out``.

    Args:
        out: the root to create (built in a temporary folder, renamed when complete).
        num_videos: test videos of split 1.
        num_frames: frames per video (JHMDB: 15 to 40).
        size: (H, W) of the frames (JHMDB: 240 x 320).
        seed: everything is a function of the parameters and this seed.
        train_videos: extra videos marked 1 (training) in the split files, which a test run skips.
        overwrite: replace ``out`` if it holds an earlier synthetic set.

    Returns:
        The manifest written to ``synth.json``: parameters and, per video, its action, split and size.
    """
    height, width = _check_size(size)
    _check_range("num_videos", num_videos, 1, 1000)
    _check_range("num_frames", num_frames, 2, 10000)
    _check_range("train_videos", train_videos, 0, 1000)
    _refuse_non_empty(out, overwrite)
    params = {"num_videos": num_videos, "num_frames": num_frames, "size": [height, width], "seed": seed}
    params.update(train_videos=train_videos)
    records, marks = [], {action: {} for action in ACTIONS}
    total = num_videos + train_videos
    with atomic_directory(out) as root:
        for index in track(range(total), total=total, desc="synth jhmdb", unit="video"):
            rng = np.random.default_rng((seed, index))
            action = ACTIONS[index % len(ACTIONS)]
            name = f"synth_{action}_{index:02d}"
            frames, _, figure = _render(rng, (height, width), num_frames)
            write_jhmdb_video(root, action, name, frames, figure.joints)
            marks[action][name] = 2 if index < num_videos else 1
            split = "test" if index < num_videos else "train"
            records.append({"name": name, "action": action, "split": split, "num_frames": num_frames})
        for action, videos in marks.items():
            if videos:
                write_split_file(root, action, 1, videos)
        manifest = _manifest("jhmdb", params, videos=records)
        write_json(root / MANIFEST, manifest)
    return manifest


def make_synthetic_vip(
    out: str | os.PathLike,
    num_videos: int = 3,
    num_frames: int = 12,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    annotate_every: int = 1,
    overwrite: bool = False,
) -> dict:
    """Write a synthetic VIP_Fine set to ``out``.

    Args:
        out: the root to create (built in a temporary folder, renamed when complete).
        num_videos: videos listed in ``lists/val_videos.txt``.
        num_frames: frames per video.
        size: (H, W) of the frames.
        seed: everything is a function of the parameters and this seed.
        annotate_every: part annotations on frames 0, n, 2n, ... (VIP_Fine: every frame it holds).
        overwrite: replace ``out`` if it holds an earlier synthetic set.

    Returns:
        The manifest written to ``synth.json``: parameters and, per video, its annotated frames and parts.
    """
    height, width = _check_size(size)
    _check_range("num_videos", num_videos, 1, 1000)
    _check_range("num_frames", num_frames, 2, 10000)
    _check_range("annotate_every", annotate_every, 1, 1000)
    _refuse_non_empty(out, overwrite)
    params = {"num_videos": num_videos, "num_frames": num_frames, "size": [height, width], "seed": seed}
    params.update(annotate_every=annotate_every)
    records = []
    with atomic_directory(out) as root:
        for index in track(range(num_videos), total=num_videos, desc="synth vip", unit="video"):
            rng = np.random.default_rng((seed, 1000 + index))
            name = f"videos{index + 1}"
            frames, parts, _ = _render(rng, (height, width), num_frames)
            annotated = {t: parts[t] for t in range(0, num_frames, annotate_every)}
            write_vip_video(root, name, frames, annotated)
            present = sorted({int(v) for labels in annotated.values() for v in np.unique(labels)})
            records.append({"name": name, "num_frames": num_frames, "annotated": len(annotated), "parts": present})
        write_video_list(root, [r["name"] for r in records])
        manifest = _manifest("vip", params, videos=records)
        write_json(root / MANIFEST, manifest)
    return manifest


def _render(rng: np.random.Generator, size: tuple[int, int], num_frames: int):
    """Frames ``uint8 [H, W, 3]``, part maps ``uint8 [H, W]`` and the figure of one video."""
    height, width = size
    figure = plan_figure(rng, size, num_frames)
    pan = (rng.uniform(0.0, 0.03) * height, rng.uniform(0.03, 0.08) * width)
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    canvas = background_texture(rng, background, (height + math.ceil(pan[0]), width + math.ceil(pan[1])))
    frames, parts = [], []
    for t in range(num_frames):
        shift = t / max(num_frames - 1, 1)
        y, x = int(round(pan[0] * shift)), int(round(pan[1] * shift))
        frame = canvas[y : y + height, x : x + width].copy()
        labels = np.zeros(size, np.uint8)
        render_figure(frame, labels, figure, t)
        frames.append(frame)
        parts.append(labels)
    return frames, parts, figure
