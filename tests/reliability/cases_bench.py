"""`bench run` and `bench report`: hostile specs, bad backbones and data, occupied or overlapping folders.

Every case is refused before anything is written: the spec is checked key by key (one line naming the
spec, the entry, the key and the fix), every backbone is built and every benchmark's inputs are checked
before the bench folder is created, and the bench folder obeys the output rules (never an input, never
around one, never a folder that holds anything but an earlier bench run). `bench report` reads only records
of this tool, their names checked before they become paths.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from tests.reliability import hostile
from tests.reliability.cases import case
from tests.reliability.cases_features import garbage_checkpoint, malicious_checkpoint, nan_checkpoint
from tests.reliability.cases_other import file_in_the_way, foreign_folder, regular_file

B, REP = "bench run", "bench report"
BACKBONE = '[[backbone]]\nweights = "default"\n'
DAVIS = '[benchmark.davis]\nroot = "{davis}"\n'
VOC = '[benchmark.voc]\nroot = "{voc}"\nsize = 64\n'


def spec(text: str, name: str = "bench.toml", extra=None):
    """A setup writing ``text`` (``{davis}``, ``{voc}``, ``{box}`` and ``{checkpoint}`` filled in) as the spec."""

    def setup(box: Path, data) -> dict:
        if extra is not None:
            extra(box, data)
        values = {"davis": data.davis, "voc": data.voc, "box": box, "checkpoint": data.checkpoint}
        (box / name).parent.mkdir(parents=True, exist_ok=True)
        (box / name).write_text(text.format(**values), encoding="utf-8")
        return {"spec": box / name}

    return setup


def spec_bytes(content: bytes):
    def setup(box: Path, data) -> dict:
        (box / "bench.toml").write_bytes(content)
        return {"spec": box / "bench.toml"}

    return setup


def run_case(id: str, setup, *args: object, **options):
    return case(id, B, "{spec}", "--out", "{out}", *args, setup=setup, **options)


def copy_davis(change):
    def extra(box: Path, data) -> None:
        shutil.copytree(data.davis, box / "davis")
        change(box / "davis")

    return extra


def empty_first_annotation(davis: Path) -> None:
    first = sorted((davis / "Annotations" / "480p").iterdir())[0] / "00000.png"
    hostile.write_labels(first, np.zeros((64, 96), np.uint8))


def foreign_run(box: Path, data) -> None:
    (box / "run").mkdir()
    (box / "run" / "notes.txt").write_text("not a run")


def checkpointless_run(box: Path, data) -> None:
    (box / "run").mkdir()
    (box / "run" / "config.json").write_text(json.dumps({"config": {"arch": "resnet18"}, "preset": "ours-cpu"}))


def garbage_bench(box: Path, data) -> None:
    (box / "out").mkdir()
    (box / "out" / "bench.json").write_bytes(b"\xff\xfe not json")


def hostile_rows(box: Path, data) -> None:
    (box / "out").mkdir()
    rows = [{"label": "../../escape"}]
    columns = [{"name": "davis", "kind": "davis", "headline": "J&F-Mean"}]
    document = {"kind": "bench", "rows": rows, "columns": columns, "status": "complete"}
    (box / "out" / "bench.json").write_text(json.dumps(document))


def bench_folder(box: Path, data) -> None:
    (box / "out" / "cells").mkdir(parents=True)
    document = {"kind": "bench", "rows": [], "columns": [], "status": "complete"}
    (box / "out" / "bench.json").write_text(json.dumps(document))


def bench_folder_and_file(box: Path, data) -> None:
    bench_folder(box, data)
    file_in_the_way(box, data)


GOOD = BACKBONE + DAVIS
CASES_RUN = [
    case("bench-spec-missing", B, "{box}/nope.toml", "--out", "{out}", contains=("not found",)),
    case("bench-spec-is-folder", B, "{box}", "--out", "{out}", contains=("folder",)),
    run_case("bench-spec-not-toml", spec("[[backbone]\nweights = "), contains=("not valid TOML",)),
    run_case("bench-spec-binary", spec_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"), contains=("not UTF-8",)),
    run_case("bench-spec-empty", spec(""), contains=("no [[backbone]]",)),
    run_case("bench-spec-no-benchmark", spec(BACKBONE), contains=("no [benchmark.NAME]",)),
    run_case("bench-spec-unknown-table", spec(GOOD + "[extras]\nx = 1\n"), contains=("unknown table",)),
    run_case("bench-run-unknown-key", spec(GOOD + "[run]\nthreads = 8\n"), contains=("threads",)),
    run_case("bench-run-batch-zero", spec(GOOD + "[run]\nbatch_size = 0\n"), contains=("batch_size",)),
    run_case("bench-backbone-unknown-key", spec('[[backbone]]\nwieghts = "default"\n' + DAVIS), contains=("wieghts",)),
    run_case("bench-backbone-not-text", spec("[[backbone]]\narch = 18\n" + DAVIS), contains=("arch",)),
    run_case("bench-backbone-arch-bogus", spec('[[backbone]]\narch = "vgg16"\n' + DAVIS), contains=("vgg16",)),
    run_case("bench-backbone-weights-bogus", spec('[[backbone]]\nweights = "imagenet-42"\n' + DAVIS)),
    run_case(
        "bench-backbone-weights-other-arch",
        spec('[[backbone]]\narch = "resnet18"\nweights = "resnet50-imagenet"\n' + DAVIS),
        contains=("resnet50",),
    ),
    run_case(
        "bench-backbone-two-sources",
        spec('[[backbone]]\nweights = "default"\ncheckpoint = "{checkpoint}"\n' + DAVIS),
        contains=("both given",),
    ),
    run_case("bench-backbone-label-path", spec('[[backbone]]\nlabel = "../up"\n' + DAVIS), contains=("plain name",)),
    run_case("bench-backbone-label-long", spec(f'[[backbone]]\nlabel = "{"x" * 300}"\n' + DAVIS)),
    run_case("bench-backbone-labels-twice", spec(BACKBONE + BACKBONE + DAVIS), contains=("twice",)),
    run_case("bench-checkpoint-missing", spec('[[backbone]]\ncheckpoint = "{box}/nope.pth"\n' + DAVIS)),
    run_case(
        "bench-checkpoint-garbage",
        spec('[[backbone]]\ncheckpoint = "garbage.pth"\n' + DAVIS, extra=garbage_checkpoint),
    ),
    run_case(
        "bench-checkpoint-nan",
        spec('[[backbone]]\ncheckpoint = "nan.pth"\n' + DAVIS, extra=nan_checkpoint),
        contains=("nan",),
    ),
    run_case(
        "bench-checkpoint-malicious",
        spec('[[backbone]]\ncheckpoint = "evil.pth"\n' + DAVIS, extra=malicious_checkpoint),
        contains=("unsafe",),
    ),
    run_case(
        "bench-checkpoint-other-arch",
        spec('[[backbone]]\narch = "resnet18"\ncheckpoint = "{checkpoint}"\n' + DAVIS),
    ),
    run_case(
        "bench-pretrain-run-foreign",
        spec('[[backbone]]\npretrain_run = "run"\n' + DAVIS, extra=foreign_run),
        contains=("not a pretraining run",),
    ),
    run_case(
        "bench-pretrain-run-no-checkpoint",
        spec('[[backbone]]\npretrain_run = "run"\n' + DAVIS, extra=checkpointless_run),
        contains=("no kept checkpoint",),
    ),
    run_case("bench-benchmark-kind-bogus", spec(BACKBONE + '[benchmark.x]\nkind = "jhmdb9"\nroot = "."\n')),
    run_case("bench-benchmark-name-path", spec(BACKBONE + '[benchmark."../x"]\nkind = "voc"\nroot = "."\n')),
    run_case("bench-benchmark-root-missing", spec(BACKBONE + "[benchmark.davis]\nsplit = 'val'\n"), contains=("root",)),
    run_case("bench-benchmark-root-nowhere", spec(BACKBONE + '[benchmark.davis]\nroot = "{box}/nope"\n')),
    run_case("bench-benchmark-unknown-key", spec(GOOD + "temprature = 0.1\n"), contains=("temprature",)),
    run_case("bench-davis-year-bogus", spec(GOOD + 'year = "2015"\n'), contains=("2015",)),
    run_case("bench-davis-year-number", spec(GOOD + "year = 2017\n"), contains=("not text",)),
    run_case("bench-davis-preset-bogus", spec(GOOD + 'preset = "stc"\n'), contains=("stc",)),
    run_case("bench-davis-temperature-zero", spec(GOOD + "temperature = 0.0\n"), contains=("temperature",)),
    run_case("bench-davis-temperature-nan", spec(GOOD + "temperature = nan\n"), contains=("finite",)),
    run_case("bench-davis-topk-zero", spec(GOOD + "topk = 0\n"), contains=("topk",)),
    run_case("bench-davis-stride-odd", spec(GOOD + "output_stride = 7\n")),
    run_case("bench-davis-layer-bogus", spec(GOOD + 'layer = "layer9"\n'), contains=("layer9",)),
    run_case("bench-davis-root-is-voc", spec(BACKBONE + '[benchmark.davis]\nroot = "{voc}"\n')),
    run_case(
        "bench-davis-first-annotation-empty",
        spec(BACKBONE + '[benchmark.davis]\nroot = "davis"\n', extra=copy_davis(empty_first_annotation)),
        contains=("no objects",),
    ),
    run_case("bench-voc-size-tiny", spec(BACKBONE + VOC.replace("size = 64", "size = 8")), contains=("size",)),
    run_case("bench-voc-proposals-bogus", spec(BACKBONE + VOC + 'proposals = "sam"\n'), contains=("sam",)),
    run_case("bench-voc-max-images-zero", spec(BACKBONE + VOC + "max_images = 0\n"), contains=("max_images",)),
    run_case("bench-voc-root-is-davis", spec(BACKBONE + '[benchmark.voc]\nroot = "{davis}"\n')),
    case("bench-out-is-davis-root", B, "{spec}", "--out", "{d.davis}", setup=spec(GOOD), out=None),
    case("bench-out-inside-davis-root", B, "{spec}", "--out", "{d.davis}/bench", setup=spec(GOOD), out=None),
    case("bench-out-contains-spec", B, "{box}/out/bench.toml", "--out", "{out}", setup=spec(GOOD, "out/bench.toml")),
    run_case("bench-out-is-file", spec(GOOD, extra=regular_file)),
    case("bench-out-under-file", B, "{spec}", "--out", "{box}/file.txt/b", setup=spec(GOOD, extra=file_in_the_way)),
    run_case("bench-out-foreign-folder", spec(GOOD, extra=foreign_folder), contains=("not empty",)),
    run_case("bench-out-garbage-record", spec(GOOD, extra=garbage_bench), contains=("not a bench record",)),
    run_case("bench-device-bogus", spec(GOOD), "--device", "tpu"),
]

CASES_REPORT = [
    case("bench-report-folder-missing", REP, "{box}/nope", out=None),
    case("bench-report-foreign-folder", REP, "{out}", setup=foreign_folder, out=None, contains=("bench.json",)),
    case("bench-report-garbage-record", REP, "{out}", setup=garbage_bench, out=None),
    case("bench-report-hostile-rows", REP, "{out}", setup=hostile_rows, out=None, contains=("plain name",)),
    case("bench-report-out-is-cells", REP, "{out}", "--out", "{out}/cells", setup=bench_folder, out=None),
    case("bench-report-out-is-folder", REP, "{out}", "--out", "{out}", setup=bench_folder, out=None),
    case("bench-report-out-is-file", REP, "{out}", "--out", "{box}/file.txt", setup=bench_folder_and_file, out=None),
]

CASES = [*CASES_RUN, *CASES_REPORT]
