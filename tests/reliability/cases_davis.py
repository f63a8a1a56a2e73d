"""`davis propagate` and `davis evaluate`: broken DAVIS layouts, hostile run records, outputs over the
dataset, bad protocol values."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from tests.reliability import hostile
from tests.reliability.cases import case
from tests.reliability.cases_features import nan_checkpoint

P, E = "davis propagate", "davis evaluate"
ROOT = ("--davis-root", "{d.davis}")


# ------------------------------------------------------------------------------------------ setups
def davis_copy(box: Path, data) -> dict:
    shutil.copytree(data.davis, box / "davis")
    return {"davis": box / "davis", "seq": data.sequence}


def _davis_changed(change):
    def setup(box, data):
        extras = davis_copy(box, data)
        change(box / "davis", data.sequence)
        return extras

    return setup


def _frames(davis: Path, sequence: str) -> Path:
    return davis / "JPEGImages" / "480p" / sequence


def _annotations(davis: Path, sequence: str) -> Path:
    return davis / "Annotations" / "480p" / sequence


def _image_set(davis: Path) -> Path:
    return davis / "ImageSets" / "2017" / "val.txt"


def no_image_sets(davis, sequence):
    shutil.rmtree(davis / "ImageSets")


def empty_image_set(davis, sequence):
    _image_set(davis).write_text("")


def non_utf8_image_set(davis, sequence):
    _image_set(davis).write_bytes(b"synth-\xff\xfe\n")


def escaping_sequence(davis, sequence):
    """ImageSets names ``../escape``; frames and annotations exist there, so reading works and writing
    ``OUT/../escape`` would land outside --out."""
    for kind in ("JPEGImages", "Annotations"):
        shutil.copytree(davis / kind / "480p" / sequence, davis / kind / "escape")
    _image_set(davis).write_text("../escape\n")


def empty_first_annotation(davis, sequence):
    first = _annotations(davis, sequence) / "00000.png"
    hostile.write_labels(first, np.zeros((64, 96)), mode="P")


def small_first_annotation(davis, sequence):
    hostile.write_labels(_annotations(davis, sequence) / "00000.png", np.ones((20, 30)), mode="P")


def off_palette_annotation(davis, sequence):
    from PIL import Image

    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[10:40, 10:40] = (1, 2, 3)
    Image.fromarray(rgb).save(_annotations(davis, sequence) / "00000.png")


def truncated_first_frame(davis, sequence):
    frame = _frames(davis, sequence) / "00000.jpg"
    frame.write_bytes(frame.read_bytes()[:200])


def corrupt_later_frame(davis, sequence):
    frame = _frames(davis, sequence) / "00002.jpg"
    frame.write_bytes(frame.read_bytes()[:200])


def resized_later_frame(davis, sequence):
    hostile.write_rgb(_frames(davis, sequence) / "00002.jpg", 32, 48)


def no_frames(davis, sequence):
    for frame in _frames(davis, sequence).iterdir():
        frame.unlink()


def non_utf8_sequence(davis, sequence):
    name = os.fsdecode(b"seq-\xff")
    for kind in ("JPEGImages", "Annotations"):
        shutil.copytree(davis / kind / "480p" / sequence, davis / kind / "480p" / name)
    _image_set(davis).write_bytes(b"seq-\xff\n")


def results_copy(box: Path, data) -> dict:
    shutil.copytree(data.results, box / "res")
    return {"res": box / "res", "seq": data.sequence}


def _record_changed(change):
    def setup(box, data):
        extras = results_copy(box, data)
        (box / "victim").mkdir()
        (box / "victim" / "precious.txt").write_text("not the toolkit's")
        record = box / "res" / "propagation.json"
        document = json.loads(record.read_text())
        change(document, box, data.sequence)
        record.write_text(json.dumps(document))
        return extras

    return setup


def _record_text(text: str):
    def setup(box, data):
        extras = results_copy(box, data)
        (box / "res" / "propagation.json").write_text(text)
        return extras

    return setup


def escaping_record(document, box, sequence):
    document["sequences"]["../victim"] = document["sequences"][sequence]


def absolute_record(document, box, sequence):
    document["sequences"][str(box / "victim")] = document["sequences"][sequence]


def string_sequences(document, box, sequence):
    document["sequences"] = "../victim"


def bad_frame_count(document, box, sequence):
    document["sequences"][sequence]["frames"] = "many"


def symlinked_sequence(box, data):
    extras = results_copy(box, data)
    (box / "victim").mkdir()
    (box / "victim" / "precious.txt").write_text("not the toolkit's")
    shutil.rmtree(box / "res" / data.sequence)
    (box / "res" / data.sequence).symlink_to(box / "victim")
    return extras


def foreign_files(box, data):
    (box / "out").mkdir()
    (box / "out" / "notes.txt").write_text("mine")


def regular_file(box, data):
    (box / "out").write_text("a file")


def file_in_the_way(box, data):
    (box / "file.txt").write_text("a file")


# evaluate
def _results_changed(change):
    def setup(box, data):
        extras = results_copy(box, data)
        change(box / "res" / data.sequence)
        return extras

    return setup


def _result_png(folder: Path, labels: np.ndarray, name: str = "00001.png") -> None:
    hostile.write_labels(folder / name, labels, mode="P")


CASES_PROPAGATE = [
    case("propagate-root-missing", P, "--davis-root", "{box}/nope", "--out", "{out}"),
    case("propagate-root-empty", P, "--davis-root", "{box}", "--out", "{out}"),
    case(
        "propagate-no-image-sets", P, "--davis-root", "{davis}", "--out", "{out}", setup=_davis_changed(no_image_sets)
    ),
    case(
        "propagate-empty-image-set",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(empty_image_set),
    ),
    case(
        "propagate-non-utf8-image-set",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(non_utf8_image_set),
    ),
    case(
        "propagate-sequence-escapes-out",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(escaping_sequence),
        contains=("../escape",),
    ),
    case("propagate-sequences-unknown", P, *ROOT, "--out", "{out}", "--sequences", "bear"),
    case("propagate-sequences-escaping", P, *ROOT, "--out", "{out}", "--sequences", "../x"),
    case("propagate-year-2015", P, *ROOT, "--out", "{out}", "--year", "2015"),
    case("propagate-resolution-720p", P, *ROOT, "--out", "{out}", "--resolution", "720p"),
    case("propagate-set-unknown", P, *ROOT, "--out", "{out}", "--set", "test-dev"),
    case("propagate-preset-unknown", P, *ROOT, "--out", "{out}", "--preset", "stm"),
    case("propagate-temperature-zero", P, *ROOT, "--out", "{out}", "--temperature", "0"),
    case("propagate-temperature-negative", P, *ROOT, "--out", "{out}", "--temperature", "-1"),
    case("propagate-temperature-nan", P, *ROOT, "--out", "{out}", "--temperature", "nan"),
    case("propagate-temperature-inf", P, *ROOT, "--out", "{out}", "--temperature", "inf"),
    case("propagate-topk-zero", P, *ROOT, "--out", "{out}", "--topk", "0"),
    case("propagate-topk-negative", P, *ROOT, "--out", "{out}", "--topk", "-3"),
    case("propagate-radius-negative", P, *ROOT, "--out", "{out}", "--radius", "-5", contains=("radius",)),
    case("propagate-radius-nan", P, *ROOT, "--out", "{out}", "--radius", "nan", contains=("radius",)),
    case("propagate-radius-inf", P, *ROOT, "--out", "{out}", "--radius", "inf", contains=("radius",)),
    case("propagate-context-negative", P, *ROOT, "--out", "{out}", "--context", "-1"),
    case("propagate-output-stride-5", P, *ROOT, "--out", "{out}", "--output-stride", "5"),
    case("propagate-batch-size-zero", P, *ROOT, "--out", "{out}", "--batch-size", "0"),
    case("propagate-device-bogus", P, *ROOT, "--out", "{out}", "--device", "gpu0"),
    case("propagate-checkpoint-nan", P, *ROOT, "--out", "{out}", "--checkpoint", "{box}/nan.pth", setup=nan_checkpoint),
    case("propagate-weights-bogus", P, *ROOT, "--out", "{out}", "--weights", "best"),
    case("propagate-layer-unknown", P, *ROOT, "--out", "{out}", "--layer", "features.99"),
    case("propagate-resize-zero", P, *ROOT, "--out", "{out}", "--resize", "fixed:0x0"),
    case("propagate-preprocess-unknown", P, *ROOT, "--out", "{out}", "--preprocess", "dinov2", contains=("dinov2",)),
    case(
        "propagate-out-is-davis-root",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{davis}",
        "--overwrite",
        setup=davis_copy,
        out="{davis}",
    ),
    case(
        "propagate-out-is-annotations",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{davis}/Annotations/480p",
        "--overwrite",
        setup=davis_copy,
        out="{davis}/Annotations/480p",
    ),
    case(
        "propagate-out-is-sequence-frames",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{davis}/JPEGImages/480p/{seq}",
        "--overwrite",
        setup=davis_copy,
        out="{davis}/JPEGImages/480p/{seq}",
    ),
    case("propagate-out-is-file", P, *ROOT, "--out", "{out}", "--overwrite", setup=regular_file),
    case("propagate-out-under-file", P, *ROOT, "--out", "{box}/file.txt/res", setup=file_in_the_way),
    case("propagate-out-name-too-long", P, *ROOT, "--out", "{box}/" + "r" * 300),
    case("propagate-out-foreign-files", P, *ROOT, "--out", "{out}", setup=foreign_files),
    case(
        "propagate-record-escaping-name",
        P,
        *ROOT,
        "--out",
        "{res}",
        "--preset",
        "dino",
        "--overwrite",
        setup=_record_changed(escaping_record),
        out="{res}",
        contains=("propagation.json",),
    ),
    case(
        "propagate-record-absolute-name",
        P,
        *ROOT,
        "--out",
        "{res}",
        "--preset",
        "dino",
        "--overwrite",
        setup=_record_changed(absolute_record),
        out="{res}",
        contains=("propagation.json",),
    ),
    case(
        "propagate-record-sequences-string",
        P,
        *ROOT,
        "--out",
        "{res}",
        "--preset",
        "dino",
        "--overwrite",
        setup=_record_changed(string_sequences),
        out="{res}",
    ),
    case(
        "propagate-record-frames-text", P, *ROOT, "--out", "{res}", setup=_record_changed(bad_frame_count), out="{res}"
    ),
    case("propagate-record-garbage", P, *ROOT, "--out", "{res}", setup=_record_text("{not json"), out="{res}"),
    case("propagate-record-list", P, *ROOT, "--out", "{res}", "--overwrite", setup=_record_text("[1, 2]"), out="{res}"),
    case(
        "propagate-result-symlink-outside",
        P,
        *ROOT,
        "--out",
        "{res}",
        "--preset",
        "dino",
        "--overwrite",
        setup=symlinked_sequence,
        out="{res}",
    ),
    case(
        "propagate-annotation-empty",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(empty_first_annotation),
    ),
    case(
        "propagate-annotation-wrong-size",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(small_first_annotation),
    ),
    case(
        "propagate-annotation-off-palette",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(off_palette_annotation),
    ),
    case(
        "propagate-first-frame-truncated",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(truncated_first_frame),
    ),
    case(
        "propagate-later-frame-corrupt",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(corrupt_later_frame),
        out_may_change=True,
    ),
    case(
        "propagate-later-frame-resized",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(resized_later_frame),
        out_may_change=True,
    ),
    case(
        "propagate-sequence-without-frames",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(no_frames),
    ),
    case(
        "propagate-non-utf8-sequence",
        P,
        "--davis-root",
        "{davis}",
        "--out",
        "{out}",
        setup=_davis_changed(non_utf8_sequence),
        child=True,
    ),
]

RES = ("--davis-root", "{d.davis}", "--results", "{res}")

CASES_EVALUATE = [
    case("evaluate-root-missing", E, "--davis-root", "{box}/nope", "--results", "{d.results}", out=None),
    case("evaluate-results-missing", E, *ROOT, "--results", "{box}/nope", out=None),
    case("evaluate-sequence-missing", E, *RES, setup=_results_changed(shutil.rmtree), out=None),
    case("evaluate-frame-missing", E, *RES, setup=_results_changed(lambda f: (f / "00001.png").unlink()), out=None),
    case(
        "evaluate-mask-wrong-size",
        E,
        *RES,
        setup=_results_changed(lambda f: _result_png(f, np.ones((10, 10)))),
        out=None,
    ),
    case(
        "evaluate-mask-id-too-high",
        E,
        *RES,
        setup=_results_changed(lambda f: _result_png(f, np.full((64, 96), 9))),
        out=None,
    ),
    case(
        "evaluate-mask-garbage",
        E,
        *RES,
        setup=_results_changed(lambda f: (f / "00001.png").write_bytes(b"\x89PNG garbage")),
        out=None,
    ),
    case(
        "evaluate-mask-16-bit",
        E,
        *RES,
        setup=_results_changed(lambda f: hostile.write_gray16(f / "00001.png", np.full((64, 96), 3000))),
        out=None,
    ),
    case(
        "evaluate-mask-is-folder",
        E,
        *RES,
        setup=_results_changed(lambda f: ((f / "00001.png").unlink(), (f / "00001.png").mkdir())),
        out=None,
    ),
    case("evaluate-year-2015", E, *ROOT, "--results", "{d.results}", "--year", "2015", out=None),
    case("evaluate-bound-th-zero", E, *ROOT, "--results", "{d.results}", "--bound-th", "0", out=None),
    case("evaluate-bound-th-negative", E, *ROOT, "--results", "{d.results}", "--bound-th", "-1", out=None),
    case("evaluate-bound-th-nan", E, *ROOT, "--results", "{d.results}", "--bound-th", "nan", out=None),
    case("evaluate-bound-th-inf", E, *ROOT, "--results", "{d.results}", "--bound-th", "inf", out=None),
    case("evaluate-processes-zero", E, *ROOT, "--results", "{d.results}", "--processes", "0", out=None),
    case("evaluate-set-unknown", E, *ROOT, "--results", "{d.results}", "--set", "test-dev", out=None),
    case("evaluate-output-is-file", E, *ROOT, "--results", "{d.results}", "--output", "{out}", setup=regular_file),
    case(
        "evaluate-output-under-file",
        E,
        *ROOT,
        "--results",
        "{d.results}",
        "--output",
        "{box}/file.txt/o",
        setup=file_in_the_way,
    ),
    case(
        "evaluate-output-in-annotations",
        E,
        "--davis-root",
        "{davis}",
        "--results",
        "{d.results}",
        "--output",
        "{davis}/Annotations/480p/{seq}",
        setup=davis_copy,
        out=None,
    ),
    case("evaluate-output-in-result-sequence", E, *RES, "--output", "{res}/{seq}", setup=results_copy, out=None),
    case(
        "evaluate-no-overwrite-existing",
        E,
        *RES,
        "--no-overwrite",
        setup=lambda b, d: {
            **results_copy(b, d),
            **({} if (b / "res" / "global_results-val.csv").write_text("x") else {}),
        },
        out=None,
    ),
    case(
        "evaluate-non-utf8-image-set",
        E,
        "--davis-root",
        "{davis}",
        "--results",
        "{d.results}",
        setup=_davis_changed(non_utf8_image_set),
        out=None,
    ),
]

CASES = [*CASES_PROPAGATE, *CASES_EVALUATE]
