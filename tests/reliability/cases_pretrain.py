"""`pretrain`: bad data, occupied or overlapping run folders, impossible recipes, hostile initial weights.

Every case is refused before anything is trained or written: the output rules of house rule 15 (RUN is
never an input, never inside or around one, never a folder that holds anything but a previous run) and
the recipe checks of the frozen config. The nan/garbage/malicious weights are the same files the
backbone commands refuse; --weights of a MobileNetV2 ``state_dict`` into the default ResNet-18 is
refused as a mismatch.
"""

from __future__ import annotations

import json
import os
import shutil

from tests.reliability.cases import case
from tests.reliability.cases_features import garbage_checkpoint, malicious_checkpoint, nan_checkpoint
from tests.reliability.cases_other import file_in_the_way, foreign_folder, regular_file

P = "pretrain"
RECIPE = ("--preset", "ours-cpu", "--batch-size", "4", "--workers", "0")


def empty_folder(box, data):
    (box / "empty").mkdir()


def garbage_images(box, data):
    (box / "junk").mkdir()
    for index in range(4):
        (box / "junk" / f"{index}.jpg").write_bytes(os.urandom(512))
    (box / "junk" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def images_inside_out(box, data):
    shutil.copytree(data.images, box / "out" / "images")


def previous_run(box, data):
    (box / "out").mkdir()
    (box / "out" / "config.json").write_text(json.dumps({"config": {"epochs": 3}, "preset": "ours-cpu"}))
    (box / "out" / "checkpoint.pth.tar").write_bytes(b"")


def garbage_record(box, data):
    (box / "out").mkdir()
    (box / "out" / "config.json").write_bytes(b"\xff\xfe not json")


def data_case(id: str, *args: object, **options):
    return case(id, P, "{d.images}", "--out", "{out}", *RECIPE, *args, **options)


CASES = [
    case("pretrain-data-missing", P, "{box}/nope", "--out", "{out}", *RECIPE, contains=("no such file",)),
    case("pretrain-data-empty-folder", P, "{box}/empty", "--out", "{out}", *RECIPE, setup=empty_folder),
    case(
        "pretrain-data-only-garbage",
        P,
        "{box}/junk",
        "--out",
        "{out}",
        *RECIPE,
        setup=garbage_images,
        contains=("no readable images",),
    ),  # fmt: skip
    case("pretrain-out-is-input", P, "{d.images}", "--out", "{d.images}", *RECIPE, out=None, contains=("input",)),
    case("pretrain-out-inside-input", P, "{d.images}", "--out", "{d.images}/run", *RECIPE, out=None),
    case(
        "pretrain-out-contains-input",
        P,
        "{out}/images",
        "--out",
        "{out}",
        *RECIPE,
        "--overwrite",
        setup=images_inside_out,
        contains=("contains an input",),
    ),  # fmt: skip
    data_case("pretrain-out-is-file", setup=regular_file),
    case("pretrain-out-under-file", P, "{d.images}", "--out", "{box}/file.txt/run", *RECIPE, setup=file_in_the_way),
    case("pretrain-out-name-too-long", P, "{d.images}", "--out", "{box}/" + "r" * 300, *RECIPE),
    data_case("pretrain-out-foreign-folder", setup=foreign_folder, contains=("not a pretraining run",)),
    data_case("pretrain-overwrite-foreign-folder", "--overwrite", setup=foreign_folder),
    data_case("pretrain-resume-foreign-folder", "--resume", setup=foreign_folder),
    data_case("pretrain-overwrite-garbage-record", "--overwrite", setup=garbage_record),
    data_case("pretrain-existing-run", setup=previous_run, contains=("already holds",)),
    data_case("pretrain-resume-other-recipe", "--resume", setup=previous_run, contains=("cannot resume",)),
    data_case("pretrain-preset-bogus", "--preset", "simclr"),
    data_case("pretrain-arch-bogus", "--arch", "vgg16"),
    data_case("pretrain-batch-over-data", "--batch-size", "64", contains=("fewer than one batch",)),
    data_case("pretrain-batch-odd-split", "--batch-size", "3"),
    data_case("pretrain-temperature-zero", "--temperature", "0"),
    data_case("pretrain-lr-negative", "--lr", "-1"),
    data_case("pretrain-key-momentum-one", "--key-momentum", "1"),
    data_case("pretrain-nn-weight-negative", "--nn-weight", "-0.4"),
    data_case("pretrain-topk-over-queue", "--nn-topk", "99", "--queue-size", "32"),
    data_case("pretrain-topk-over-auto-queue", "--nn-topk", "99", contains=("exceeds the queue size",)),
    data_case("pretrain-queue-size-word", "--queue-size", "lots", contains=("auto",)),
    data_case("pretrain-queue-size-zero", "--queue-size", "0"),
    data_case("pretrain-nn-topk-negative", "--nn-topk", "-2"),
    data_case("pretrain-large-size-tiny", "--large-size", "4"),
    data_case("pretrain-weights-unknown-name", "--weights", "imagenet-42"),
    data_case("pretrain-weights-missing-file", "--weights", "{box}/nope.pth"),
    data_case("pretrain-weights-garbage", "--weights", "{box}/garbage.pth", setup=garbage_checkpoint),
    data_case("pretrain-weights-nan", "--weights", "{box}/nan.pth", setup=nan_checkpoint, contains=("nan",)),
    data_case(
        "pretrain-weights-malicious", "--weights", "{box}/evil.pth", setup=malicious_checkpoint, contains=("unsafe",)
    ),
    data_case("pretrain-weights-other-arch", "--weights", "{d.checkpoint}"),
    data_case("pretrain-eval-davis-missing", "--eval-davis", "{box}/nope"),
    data_case("pretrain-eval-davis-year-bogus", "--eval-davis", "{d.davis}", "--eval-year", "2015"),
    data_case("pretrain-eval-davis-is-out", "--eval-davis", "{out}", setup=foreign_folder),
    data_case("pretrain-frame-step-zero", "--frame-step", "0"),
    data_case("pretrain-device-bogus", "--device", "tpu"),
]
