"""`retrieval eval-voc`, `checkpoints`, `synth`, `demo`, `backbones`, `env`, and Click's own usage errors
for every command."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tests.reliability import hostile
from tests.reliability.cases import case
from tests.reliability.cases_features import (
    garbage_checkpoint,
    list_checkpoint,
    malicious_checkpoint,
    nan_checkpoint,
    truncated_checkpoint,
)

R = "retrieval eval-voc"
COMMANDS = (
    "demo",
    "features",
    "query",
    "backbones",
    "env",
    "davis propagate",
    "davis evaluate",
    "jhmdb propagate",
    "jhmdb evaluate",
    "vip propagate",
    "vip evaluate",
    "video propagate",
    "index build",
    "index add",
    "index info",
    "retrieval eval-voc",
    "checkpoints list",
    "checkpoints inspect",
    "checkpoints download",
    "synth davis",
    "synth voc",
    "synth jhmdb",
    "synth vip",
    "pretrain",
    "bench run",
    "bench report",
)


def voc_copy(box: Path, data) -> dict:
    shutil.copytree(data.voc, box / "voc")
    label = sorted((box / "voc" / "SegmentationClass").iterdir())[0]
    return {"voc": box / "voc", "label": label}


def _voc_changed(change):
    def setup(box, data):
        extras = voc_copy(box, data)
        change(box / "voc")
        return extras

    return setup


def _first(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


def voc_image_listed_missing(voc):
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("synth_999999\n")


def voc_label_wrong_size(voc):
    ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    hostile.write_labels(voc / "SegmentationClass" / f"{ids[0]}.png", np.ones((8, 8)), mode="P")


def voc_label_garbage(voc):
    ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    (voc / "SegmentationClass" / f"{ids[0]}.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")


def empty_file(box, data):
    (box / "empty.pth").write_bytes(b"")


def tensorless_checkpoint(box, data):
    hostile.save_checkpoint(box / "plain.pth", {"epoch": 3, "lr": 0.1})


def regular_file(box, data):
    (box / "out").write_text("a file")


def file_in_the_way(box, data):
    (box / "file.txt").write_text("a file")


def foreign_folder(box, data):
    (box / "out").mkdir()
    (box / "out" / "thesis.tex").write_text("years of work")


def out_folder(box, data):
    (box / "out").mkdir()
    (box / "out" / "keep.txt").write_text("mine")


VOC = ("--voc-root", "{d.voc}", "--max-images", "2", "--size", "64")

CASES_VOC = [
    case(f"{'voc-root-missing'}", R, "--voc-root", "{box}/nope", out=None),
    case("voc-root-empty", R, "--voc-root", "{box}", out=None),
    case(
        "voc-no-segmentation-class",
        R,
        "--voc-root",
        "{voc}",
        setup=_voc_changed(lambda v: shutil.rmtree(v / "SegmentationClass")),
        out=None,
    ),
    case(
        "voc-no-val-split",
        R,
        "--voc-root",
        "{voc}",
        setup=_voc_changed(lambda v: (v / "ImageSets" / "Segmentation" / "val.txt").unlink()),
        out=None,
    ),
    case(
        "voc-split-non-utf8",
        R,
        "--voc-root",
        "{voc}",
        setup=_voc_changed(lambda v: (v / "ImageSets" / "Segmentation" / "val.txt").write_bytes(b"synth_\xff\n")),
        out=None,
    ),
    case("voc-listed-image-missing", R, "--voc-root", "{voc}", setup=_voc_changed(voc_image_listed_missing), out=None),
    case(
        "voc-label-wrong-size",
        R,
        "--voc-root",
        "{voc}",
        "--size",
        "64",
        setup=_voc_changed(voc_label_wrong_size),
        out=None,
    ),
    case(
        "voc-label-garbage", R, "--voc-root", "{voc}", "--size", "64", setup=_voc_changed(voc_label_garbage), out=None
    ),
    case("voc-size-tiny", R, *VOC[:2], "--size", "8", out=None),
    case("voc-size-absurd", R, *VOC[:2], "--size", "100000", out=None, child=True, memory_mib=6000),
    case("voc-top-k-zero", R, *VOC, "--top-k", "0", out=None),
    case("voc-max-images-zero", R, *VOC[:2], "--max-images", "0", out=None),
    case("voc-pooling-bogus", R, *VOC, "--pooling", "max", out=None),
    case("voc-preprocess-unknown", R, *VOC, "--preprocess", "bicubic", out=None),
    case("voc-saliency-weights-bogus", R, *VOC, "--saliency-weights", "hard", out=None),
    case("voc-proposals-coco", R, *VOC, "--proposals", "coco", out=None),
    case("voc-saliency-missing", R, *VOC, "--proposals", "saliency", "--saliency", "{box}/sal", out=None),
    case("voc-out-is-folder", R, *VOC, "--out", "{out}", setup=out_folder),
    case("voc-out-under-file", R, *VOC, "--out", "{box}/file.txt/r.json", setup=file_in_the_way),
    case(
        "voc-out-is-label",
        R,
        "--voc-root",
        "{voc}",
        "--max-images",
        "2",
        "--size",
        "64",
        "--out",
        "{label}",
        setup=voc_copy,
        out="{label}",
    ),
    case("voc-checkpoint-nan", R, *VOC, "--checkpoint", "{box}/nan.pth", setup=nan_checkpoint, out=None),
    case("voc-weights-bogus", R, *VOC, "--weights", "best", out=None),
    case("voc-output-stride-3", R, *VOC, "--output-stride", "3", out=None),
]

CI, CL, CD = "checkpoints inspect", "checkpoints list", "checkpoints download"
CASES_CHECKPOINTS = [
    case("list-dir-is-file", CL, "--dir", "{box}/file.txt", setup=file_in_the_way, out=None),
    case("inspect-missing", CI, "{box}/nope.pth", out=None),
    case("inspect-garbage", CI, "{box}/garbage.pth", setup=garbage_checkpoint, out=None),
    case("inspect-malicious", CI, "{box}/evil.pth", setup=malicious_checkpoint, out=None, contains=("unsafe",)),
    case("inspect-truncated", CI, "{box}/cut.pth", setup=truncated_checkpoint, out=None),
    case("inspect-empty-file", CI, "{box}/empty.pth", setup=empty_file, out=None),
    case("inspect-nan", CI, "{box}/nan.pth", setup=nan_checkpoint, out=None, contains=("nan",)),
    case("inspect-list", CI, "{box}/list.pth", setup=list_checkpoint, out=None),
    case("inspect-no-tensors", CI, "{box}/plain.pth", setup=tensorless_checkpoint, out=None),
    case("inspect-folder", CI, "{box}", out=None),
    case("inspect-architecture-bogus", CI, "{d.checkpoint}", "--architecture", "vgg16", out=None),
    case("inspect-architecture-mismatch", CI, "{d.checkpoint}", "--architecture", "resnet50", out=None),
    case("inspect-registry-not-downloaded", CI, "ours-coco-800ep", out=None),
    case("download-unknown-name", CD, "ours-coco-9000ep", "--dir", "{out}"),
    case("download-empty-name", CD, "", "--dir", "{out}"),
    case("download-url-not-a-url", CD, "resnet18-imagenet", "--dir", "{out}", "--url", "not a url"),
    case("download-url-ftp", CD, "resnet18-imagenet", "--dir", "{out}", "--url", "ftp://example.invalid/w.pth"),
    case("download-dir-is-file", CD, "resnet18-imagenet", "--dir", "{out}", setup=regular_file),
]

SD, SV = "synth davis", "synth voc"
CASES_SYNTH = [
    case("synth-davis-sequences-zero", SD, "{out}", "--sequences", "0"),
    case("synth-davis-frames-zero", SD, "{out}", "--frames", "0"),
    case("synth-davis-frames-absurd", SD, "{out}", "--frames", "100000000"),
    case("synth-davis-height-tiny", SD, "{out}", "--height", "10"),
    case("synth-davis-widths-text", SD, "{out}", "--widths", "wide"),
    case("synth-davis-widths-zero", SD, "{out}", "--widths", "0"),
    case("synth-davis-widths-negative", SD, "{out}", "--widths", "96,-5"),
    case("synth-davis-year-2015", SD, "{out}", "--year", "2015"),
    case("synth-davis-train-negative", SD, "{out}", "--train", "-1"),
    case("synth-davis-seed-negative", SD, "{out}", "--seed", "-1", "--frames", "2"),
    case(
        "synth-davis-size-absurd", SD, "{out}", "--height", "100000", "--width", "100000", child=True, memory_mib=6000
    ),
    case("synth-davis-out-is-file", SD, "{out}", setup=regular_file),
    case("synth-davis-out-under-file", SD, "{box}/file.txt/d", setup=file_in_the_way),
    case("synth-davis-out-not-empty", SD, "{out}", setup=foreign_folder),
    case("synth-davis-overwrite-foreign-folder", SD, "{out}", "--overwrite", setup=foreign_folder),
    case("synth-voc-train-zero", SV, "{out}", "--train", "0"),
    case("synth-voc-val-zero", SV, "{out}", "--val", "0"),
    case("synth-voc-size-tiny", SV, "{out}", "--size", "8"),
    case("synth-voc-size-absurd", SV, "{out}", "--size", "100000", child=True, memory_mib=6000),
    case("synth-voc-seed-negative", SV, "{out}", "--seed", "-1", "--train", "1", "--val", "1"),
    case("synth-voc-out-is-file", SV, "{out}", setup=regular_file),
    case("synth-voc-out-under-file", SV, "{box}/file.txt/v", setup=file_in_the_way),
    case("synth-voc-overwrite-foreign-folder", SV, "{out}", "--overwrite", setup=foreign_folder),
]

CASES_DEMO = [
    case("demo-out-is-file", "demo", "--out", "{out}", setup=regular_file),
    case("demo-out-under-file", "demo", "--out", "{box}/file.txt/demo", setup=file_in_the_way),
    case("demo-out-foreign-folder", "demo", "--out", "{out}", setup=foreign_folder),
    case("demo-device-bogus", "demo", "--out", "{out}", "--device", "tpu"),
]

# Click's own errors, for every command: an unknown option, and a command that does not exist
CASES_USAGE = [
    *[case(f"usage-unknown-option-{c.replace(' ', '-')}", c, "--no-such-option", out=None) for c in COMMANDS],
    case("usage-surplus-argument-backbones", "backbones", "resnet50", out=None),
    case("usage-surplus-argument-env", "env", "cuda", out=None),
    case("usage-unknown-command", "", "reticulate", out=None),
    case("usage-unknown-subcommand", "index", "merge", out=None),
]

CASES = [*CASES_VOC, *CASES_CHECKPOINTS, *CASES_SYNTH, *CASES_DEMO, *CASES_USAGE]
