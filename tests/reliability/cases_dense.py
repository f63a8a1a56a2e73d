"""`retrieval eval-dense` and `synth ade20k`: missing or broken datasets and id lists, outputs over inputs or over
foreign folders, kept memories tampered or made otherwise, bad protocol and index options."""

from __future__ import annotations

import shutil

import numpy as np

from tests.reliability import hostile
from tests.reliability.cases import case
from tests.reliability.cases_bench import BACKBONE, run_case, spec
from tests.reliability.cases_index import empty_folder, regular_file, user_folder
from tests.reliability.conftest import DENSE_ARGS

E, SA = "retrieval eval-dense", "synth ade20k"
RUN = ("--root", "{d.voc}", *DENSE_ARGS)


# ------------------------------------------------------------------------------------------ setups
def id_list(text: bytes):
    def setup(box, data):
        (box / "ids.txt").write_bytes(text)

    return setup


def memory_copy(box, data):
    shutil.copytree(data.dense / "memory", box / "mem")
    return {"mem": box / "mem"}


def memory_tampered(change):
    def setup(box, data):
        extras = memory_copy(box, data)
        change(box / "mem")
        return extras

    return setup


def _record_value(key: str, value):
    return lambda mem: hostile.tamper_json(mem / "memory.json", lambda doc: doc.update({key: value}))


def _truncate(name: str):
    def change(mem):
        data = (mem / name).read_bytes()
        (mem / name).write_bytes(data[: len(data) // 2])

    return change


def output_with_other_memory(box, data):
    """An earlier run's output whose memory was made with another seed."""
    shutil.copytree(data.dense, box / "out")
    hostile.tamper_json(box / "out" / "memory" / "memory.json", lambda doc: doc["record"]["dense"].update(seed=7))


def folder_set(labels_of):
    """A ``--dataset folder`` set of two 32x32 images per split whose labels come from ``labels_of(index)``."""

    def setup(box, data):
        for split in ("train", "val"):
            (box / "set" / split / "images").mkdir(parents=True)
            (box / "set" / split / "labels").mkdir(parents=True)
            for index in range(2):
                hostile.write_rgb(box / "set" / split / "images" / f"i{index}.png", 32, 32, seed=index)
                hostile.write_labels(box / "set" / split / "labels" / f"i{index}.png", labels_of(index))
        return {"set": box / "set"}

    return setup


FOLDER = ("--dataset", "folder", "--root", "{set}", "--num-classes", "3", "--input-size", "32", "--device", "cpu")

# ------------------------------------------------------------------------------------------ cases
DENSE = [
    case("dense-root-missing", E, "--root", "{box}/nope", "--out", "{out}", *DENSE_ARGS),
    case("dense-root-is-a-file", E, "--root", "{d.image}", "--out", "{out}", *DENSE_ARGS),
    case("dense-dataset-unknown", E, *RUN, "--out", "{out}", "--dataset", "cityscapes"),
    case("dense-folder-without-classes", E, "--dataset", "folder", "--root", "{d.voc}", "--out", "{out}"),
    case("dense-classes-for-voc", E, *RUN, "--out", "{out}", "--num-classes", "5", contains=("folder",)),
    case("dense-trainaug-missing", E, "--root", "{d.voc}", "--out", "{out}", contains=("SegmentationClassAug",)),
    case("dense-train-list-missing", E, *RUN, "--out", "{out}", "--train-list", "{box}/nope.txt"),
    case(
        "dense-train-list-binary",
        E,
        *RUN,
        "--out",
        "{out}",
        "--train-list",
        "{box}/ids.txt",
        setup=id_list(b"\xff\xfe"),
    ),
    case(
        "dense-train-list-unknown-id",
        E,
        *RUN,
        "--out",
        "{out}",
        "--train-list",
        "{box}/ids.txt",
        setup=id_list(b"synth_000000\nno_such_image\n"),
        contains=("no_such_image",),
    ),
    case("dense-out-is-the-root", E, *RUN, "--out", "{d.voc}", out="{d.voc}"),
    case("dense-out-inside-the-root", E, *RUN, "--out", "{d.voc}/runs", out="{d.voc}/runs"),
    case("dense-out-is-a-file", E, *RUN, "--out", "{out}", setup=regular_file),
    case("dense-out-foreign-folder", E, *RUN, "--out", "{out}", setup=user_folder, contains=("eval-dense",)),
    case("dense-out-name-too-long", E, *RUN, "--out", "{box}/" + "o" * 300, out=None),
    case("dense-memory-out-inside-root", E, *RUN, "--out", "{out}", "--memory-out", "{d.voc}/mem", out=None),
    case("dense-memory-and-memory-out", E, *RUN, "--out", "{out}", "--memory", "{box}/a", "--memory-out", "{box}/b"),
    case("dense-memory-missing", E, *RUN, "--out", "{out}", "--memory", "{box}/nope"),
    case("dense-memory-empty-folder", E, *RUN, "--out", "{out}", "--memory", "{box}/empty", setup=empty_folder),
    case(
        "dense-memory-garbage-record",
        E,
        *RUN,
        "--out",
        "{out}",
        "--memory",
        "{mem}",
        setup=memory_tampered(lambda mem: (mem / "memory.json").write_bytes(b"\x00garbage")),
    ),
    case(
        "dense-memory-ntotal-text",
        E,
        *RUN,
        "--out",
        "{out}",
        "--memory",
        "{mem}",
        setup=memory_tampered(_record_value("ntotal", "many")),
    ),
    case(
        "dense-memory-ntotal-wrong",
        E,
        *RUN,
        "--out",
        "{out}",
        "--memory",
        "{mem}",
        setup=memory_tampered(_record_value("ntotal", 3)),
    ),
    case(
        "dense-memory-labels-truncated",
        E,
        *RUN,
        "--out",
        "{out}",
        "--memory",
        "{mem}",
        setup=memory_tampered(_truncate("labels.npy")),
    ),
    case(
        "dense-memory-faiss-truncated",
        E,
        *RUN,
        "--out",
        "{out}",
        "--memory",
        "{mem}",
        setup=memory_tampered(_truncate("faiss/index.faiss")),
    ),
    case(
        "dense-memory-other-weights",
        E,
        *RUN,
        "--out",
        "{out}",
        "--memory",
        "{mem}",
        "--weights",
        "random",
        setup=memory_copy,
        contains=("backbone.weights",),
    ),
    case(
        "dense-memory-other-input-size",
        E,
        "--root",
        "{d.voc}",
        "--train-split",
        "train",
        "--input-size",
        "32",
        "--out",
        "{out}",
        "--memory",
        "{mem}",
        setup=memory_copy,
        contains=("input_size",),
    ),
    case("dense-kept-memory-other-seed", E, *RUN, "--out", "{out}", setup=output_with_other_memory, contains=("seed",)),
    case("dense-memory-size-zero", E, *RUN, "--out", "{out}", "--memory-size", "0"),
    case("dense-memory-size-text", E, *RUN, "--out", "{out}", "--memory-size", "lots"),
    case("dense-input-size-not-a-multiple", E, *RUN, "--out", "{out}", "--input-size", "100", contains=("multiple",)),
    case("dense-temperature-zero", E, *RUN, "--out", "{out}", "--temperature", "0"),
    case("dense-matching-unknown", E, *RUN, "--out", "{out}", "--matching", "greedy"),
    case("dense-preprocess-unknown", E, *RUN, "--out", "{out}", "--preprocess", "cifar"),
    case("dense-label-dtype-unknown", E, *RUN, "--out", "{out}", "--label-dtype", "int4"),
    case("dense-factory-bogus", E, *RUN, "--out", "{out}", "--factory", "NotAnIndex"),
    case("dense-max-memory-bogus", E, *RUN, "--out", "{out}", "--max-memory", "lots"),
    case("dense-max-memory-and-factory", E, *RUN, "--out", "{out}", "--max-memory", "1G", "--factory", "Flat"),
    case("dense-on-disk-flat", E, *RUN, "--out", "{out}", "--on-disk"),
    # known only once the patches are counted: the extracted shards stay in OUT/.memory.build for a rerun
    case(
        "dense-max-memory-nothing-fits",
        E,
        *RUN,
        "--out",
        "{out}",
        "--max-memory",
        "1K",
        out_may_change=True,
        contains=("fits",),
    ),
    case(
        "dense-labels-out-of-range",
        E,
        *FOLDER,
        "--out",
        "{out}",
        setup=folder_set(lambda index: np.full((32, 32), 9, np.uint8)),
        contains=("outside",),
    ),
    case(
        "dense-label-size-differs",
        E,
        *FOLDER,
        "--out",
        "{out}",
        setup=folder_set(lambda index: np.zeros((16, 32), np.uint8)),
        contains=("size",),
    ),
]

SYNTH_ADE = [
    case("synth-ade20k-train-zero", SA, "{out}", "--train", "0"),
    case("synth-ade20k-size-tiny", SA, "{out}", "--size", "8"),
    case("synth-ade20k-out-foreign", SA, "{out}", "--overwrite", setup=user_folder),
]

DENSE_BENCH = '[benchmark.dense]\nroot = "{voc}"\ninput_size = 64\n'
BENCH = [  # `bench run` with the dense registration: refused before the bench folder exists
    run_case("bench-dense-trainaug-missing", spec(BACKBONE + DENSE_BENCH), contains=("SegmentationClassAug",)),
    run_case(
        "bench-dense-matching-bogus", spec(BACKBONE + DENSE_BENCH + 'matching = "greedy"\n'), contains=("greedy",)
    ),
    run_case(
        "bench-dense-input-size-tiny", spec(BACKBONE + DENSE_BENCH.replace("= 64", "= 8")), contains=("input_size",)
    ),
    run_case("bench-dense-dataset-bogus", spec(BACKBONE + DENSE_BENCH + 'dataset = "coco"\n'), contains=("coco",)),
]

CASES = [*DENSE, *SYNTH_ADE, *BENCH]
