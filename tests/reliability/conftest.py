"""Fixtures of the reliability tests, built once per session (per xdist worker): small synthetic DAVIS
and VOC sets, an index over the VOC images, propagated DAVIS results, a frame folder and an MP4 clip,
checkpoints good and bad. Every case treats them as inputs: they must never change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.reliability import hostile
from tests.reliability.harness import run_inprocess, snapshot


@pytest.fixture(scope="session", autouse=True)
def fence_base(tmp_path_factory) -> Path:
    """Every command these tests run may delete and rename only below pytest's temp folder (:mod:`.fence`)."""
    import os

    from tests.reliability.harness import FENCE_BASE_ENV

    base = tmp_path_factory.getbasetemp()
    os.environ[FENCE_BASE_ENV] = str(base)
    return base


@dataclass(frozen=True)
class Data:
    """Paths of the shared inputs (all under ``root``)."""

    root: Path
    davis: Path  # synthetic DAVIS-2017, 2 sequences x 4 frames, 64x96
    sequence: str  # its first sequence
    voc: Path  # synthetic VOC, 4 train + 2 val, 64x64
    images: Path  # voc/JPEGImages (6 images)
    image: Path  # one of them
    image_mask: Path  # a one-object mask of ``image``
    index: Path  # an index of ``images`` (kmeans proposals, Flat)
    results: Path  # `davis propagate` results for ``davis``
    clip: Path  # the frames of ``sequence`` as a frame folder
    clip_mask: Path  # its first-frame mask
    video: Path  # the same frames as an MP4
    checkpoint: Path  # a good mobilenet_v2 state dict (random weights)
    jhmdb: Path  # synthetic JHMDB, 2 test videos (+1 training) x 3 frames, 64x96
    jhmdb_video: str  # its first test video
    jhmdb_results: Path  # `jhmdb propagate` results for ``jhmdb``
    vip: Path  # synthetic VIP_Fine, 2 videos x 3 frames (every other one annotated), 64x96
    vip_results: Path  # `vip propagate` results for ``vip``


def _cli(*args: object) -> None:
    outcome = run_inprocess([str(a) for a in args])
    assert outcome.exit_code == 0, outcome


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Data:
    root = tmp_path_factory.mktemp("reliability-data")
    davis, voc = root / "davis", root / "voc"
    _cli("synth", "davis", davis, "--sequences", 2, "--frames", 4, "--height", 64, "--width", 96)
    _cli("synth", "voc", voc, "--train", 4, "--val", 2, "--size", 64)
    sequence = sorted(p.name for p in (davis / "JPEGImages" / "480p").iterdir())[0]
    images = voc / "JPEGImages"
    image = sorted(images.iterdir())[0]
    image_mask = root / "query_mask.png"
    labels = np.zeros((64, 64), np.uint8)
    labels[16:48, 16:48] = 1
    hostile.write_labels(image_mask, labels, mode="L")
    index = root / "index"
    _cli("index", "build", images, "--out", index)
    results = root / "results"
    _cli("davis", "propagate", "--davis-root", davis, "--out", results)
    clip = root / "clip"
    clip.mkdir()
    for frame in sorted((davis / "JPEGImages" / "480p" / sequence).iterdir()):
        (clip / frame.name).write_bytes(frame.read_bytes())
    clip_mask = root / "clip_mask.png"
    clip_mask.write_bytes((davis / "Annotations" / "480p" / sequence / "00000.png").read_bytes())
    video = root / "clip.mp4"
    from dense_retrieval.data.images import read_image
    from dense_retrieval.data.video import write_video

    write_video(video, (read_image(p) for p in sorted(clip.iterdir())), fps=10)
    checkpoint = hostile.save_checkpoint(root / "mobilenet_random.pth", hostile.mobilenet_state(seed=1))
    jhmdb, vip = root / "jhmdb", root / "vip"
    _cli("synth", "jhmdb", jhmdb, "--videos", 2, "--frames", 3, "--height", 64, "--width", 96)
    _cli("synth", "vip", vip, "--videos", 2, "--frames", 3, "--height", 64, "--width", 96, "--annotate-every", 2)
    _cli("jhmdb", "propagate", "--jhmdb-root", jhmdb, "--out", root / "jhmdb_results")
    _cli("vip", "propagate", "--vip-root", vip, "--out", root / "vip_results")
    jhmdb_video = sorted((jhmdb / "Rename_Images" / "walk").iterdir())[0].name
    return Data(
        root, davis, sequence, voc, images, image, image_mask, index, results, clip, clip_mask, video, checkpoint,
        jhmdb, jhmdb_video, root / "jhmdb_results", vip, root / "vip_results",
    )  # fmt: skip


@pytest.fixture(scope="session")
def pristine(data: Data) -> dict:
    """The byte snapshot of the shared inputs, taken once; every case compares against it."""
    return snapshot(data.root)
