"""`index merge`, and the options of `index build` that reach past one process (--max-memory, --on-disk,
--codec-from, --shard-images, --recall-queries): outputs over inputs or over good indexes, tampered or
mismatched sources, budgets that nothing fits."""

from __future__ import annotations

import shutil

from tests.reliability import hostile
from tests.reliability.cases import case
from tests.reliability.cases_index import TAMPERED, empty_folder, good_index, index_copy, regular_file, user_folder

B, M = "index build", "index merge"


# ------------------------------------------------------------------------------------------ setups
def two_indexes(box, data):
    shutil.copytree(data.index, box / "idx2")
    return {**index_copy(box, data), "idx2": box / "idx2"}


def two_indexes_and(setup):
    def combined(box, data):
        extras = two_indexes(box, data)
        setup(box, data)
        return extras

    return combined


def other_factory(box, data):
    extras = two_indexes(box, data)
    hostile.set_index_meta(box / "idx2", "factory", '"HNSW32"')
    return extras


def tampered_second(name):
    def setup(box, data):
        extras = TAMPERED[name](box, data)  # a tampered copy at idx
        shutil.copytree(data.index, box / "good")
        return {**extras, "good": box / "good"}

    return setup


# ------------------------------------------------------------------------------------------ cases
MERGE = [
    case("merge-one-index", M, "{idx}", "--out", "{out}", setup=index_copy, contains=("two",)),
    case("merge-source-missing", M, "{idx}", "{box}/nope", "--out", "{out}", setup=index_copy),
    case("merge-source-empty-folder", M, "{idx}", "{box}/empty", "--out", "{out}", setup=two_indexes_and(empty_folder)),
    case(
        "merge-out-is-a-source", M, "{idx}", "{idx2}", "--out", "{idx}", "--overwrite", setup=two_indexes, out="{idx}"
    ),
    case("merge-out-inside-a-source", M, "{idx}", "{idx2}", "--out", "{idx}/m", setup=two_indexes, out="{idx}/m"),
    case("merge-out-contains-a-source", M, "{idx}", "{idx2}", "--out", "{box}", "--overwrite", setup=two_indexes),
    case("merge-out-exists", M, "{idx}", "{idx2}", "--out", "{out}", setup=two_indexes_and(good_index)),
    case(
        "merge-out-user-folder-overwrite",
        M,
        "{idx}",
        "{idx2}",
        "--out",
        "{out}",
        "--overwrite",
        setup=two_indexes_and(user_folder),
        contains=("not a segment index",),
    ),
    case("merge-out-is-file", M, "{idx}", "{idx2}", "--out", "{out}", setup=two_indexes_and(regular_file)),
    case("merge-out-name-too-long", M, "{idx}", "{idx2}", "--out", "{box}/" + "m" * 300, setup=two_indexes),
    case("merge-other-factory", M, "{idx}", "{idx2}", "--out", "{out}", setup=other_factory, contains=("factory",)),
    case("merge-flat-on-disk", M, "{idx}", "{idx2}", "--out", "{out}", "--on-disk", setup=two_indexes),
    *[
        case(f"merge-source-{name}", M, "{good}", "{idx}", "--out", "{out}", setup=tampered_second(name))
        for name in ("garbage-database", "config-not-a-dict", "dim-wrong", "faiss-file-outside", "row-deleted")
    ],
]

BUILD_SCALE = [
    case("build-max-memory-bogus", B, "{d.images}", "--out", "{out}", "--max-memory", "lots"),
    case("build-max-memory-zero", B, "{d.images}", "--out", "{out}", "--max-memory", "0"),
    case("build-max-memory-and-factory", B, "{d.images}", "--out", "{out}", "--max-memory", "1G", "--factory", "Flat"),
    case("build-on-disk-flat", B, "{d.images}", "--out", "{out}", "--on-disk"),
    # known only once the segments are counted: the extracted shards are kept for a rerun with a larger budget
    case(
        "build-max-memory-nothing-fits",
        B,
        "{d.images}",
        "--out",
        "{out}",
        "--max-memory",
        "1K",
        out_may_change=True,
        contains=("fits",),
    ),
    case("build-codec-from-missing", B, "{d.images}", "--out", "{out}", "--codec-from", "{box}/nope"),
    case(
        "build-codec-from-empty-folder",
        B,
        "{d.images}",
        "--out",
        "{out}",
        "--codec-from",
        "{box}/empty",
        setup=empty_folder,
    ),
    case(
        "build-codec-from-is-out",
        B,
        "{d.images}",
        "--out",
        "{out}",
        "--overwrite",
        "--codec-from",
        "{out}",
        setup=good_index,
    ),
    case(
        "build-codec-from-tampered",
        B,
        "{d.images}",
        "--out",
        "{out}",
        "--codec-from",
        "{idx}",
        setup=TAMPERED["garbage-database"],
    ),
    case("build-shard-images-zero", B, "{d.images}", "--out", "{out}", "--shard-images", "0"),
    case("build-recall-queries-negative", B, "{d.images}", "--out", "{out}", "--recall-queries", "-1"),
]

CASES = [*MERGE, *BUILD_SCALE]
