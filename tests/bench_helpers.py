"""Inputs of the `bench` tests: small synthetic DAVIS and VOC sets, a tiny `pretrain` run, and specs over them.

The matrix of the issue: 3 backbones (the embedded MobileNetV2, a random ResNet-18, a checkpoint written by
`pretrain`) x 2 benchmarks (synthetic DAVIS, synthetic VOC), small enough to run in seconds.
"""

from __future__ import annotations

from pathlib import Path

from dense_retrieval.data.synth import make_synthetic_davis, make_synthetic_voc
from tests.pretrain_helpers import TINY_RECIPE, write_photos

DAVIS = {"num_sequences": 2, "num_frames": 4, "size": (64, 96), "seed": 4}
VOC = {"num_train": 4, "num_val": 2, "size": 64, "seed": 4}
VOC_SIZE = 64  # the protocol's image size for these 64 px images (reference 512)


def make_inputs(root: Path, epochs: int = 2) -> dict[str, Path]:
    """The synthetic sets and a tiny pretraining run of ``epochs`` keeping each epoch (0: none), under ``root``."""
    davis, voc = root / "davis", root / "voc"
    make_synthetic_davis(davis, **DAVIS)
    make_synthetic_voc(voc, **VOC)
    paths = {"root": root, "davis": davis, "voc": voc}
    if epochs:
        paths["run"] = pretrain_run(root / "run", root / "photos", epochs)
    return paths


def pretrain_run(run: Path, photos: Path, epochs: int = 2) -> Path:
    """A `pretrain` run of ``epochs`` on 16 photo tiles, a checkpoint kept every epoch (in this process)."""
    from typer.testing import CliRunner

    from dense_retrieval.cli import app

    write_photos(photos, 16)
    args = ["pretrain", str(photos), "--out", str(run), *TINY_RECIPE, "--queue-size", "8", "--epochs", str(epochs)]
    result = CliRunner().invoke(app, [*args, "--workers", "0", "--keep-every", "1", "--json"])
    assert result.exit_code == 0, result.stderr
    return run


def matrix_spec(path: Path, inputs: dict[str, Path], backbones: str | None = None, **davis_overrides) -> Path:
    """Write the spec of the issue's matrix at ``path`` (paths relative to it where they can be)."""
    backbones = backbones or (
        '[[backbone]]\nweights = "default"\n\n[[backbone]]\narch = "resnet18"\nweights = "random:0"\n\n'
        f'[[backbone]]\nlabel = "pretrained"\ncheckpoint = "{inputs["run"] / "checkpoint.pth.tar"}"\n'
    )
    overrides = "".join(f"{key} = {value!r}\n" for key, value in davis_overrides.items())
    text = (
        f'[run]\ndevice = "cpu"\nbatch_size = 2\n\n{backbones}\n'
        f'[benchmark.davis]\nroot = "{inputs["davis"]}"\n{overrides}\n'
        f'[benchmark.voc]\nroot = "{inputs["voc"]}"\nsize = {VOC_SIZE}\n'
    )
    path.write_text(text, encoding="utf-8")
    return path
