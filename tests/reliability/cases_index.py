"""`index build`, `index add`, `index info`: broken images and COCO files, outputs over inputs or over
good indexes, tampered index databases, bad factories and options."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from tests.reliability import hostile
from tests.reliability.cases import case
from tests.reliability.cases_features import nan_checkpoint

B, A, N = "index build", "index add", "index info"


# ------------------------------------------------------------------------------------------ setups
def images_copy(box: Path, data, count: int = 2) -> dict:
    folder = box / "imgs"
    folder.mkdir(exist_ok=True)
    for path in sorted(data.images.iterdir())[:count]:
        (folder / path.name).write_bytes(path.read_bytes())
    return {"imgs": folder}


def with_bad_image(box, data):
    images_copy(box, data)
    (box / "imgs" / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")


def with_non_utf8_image(box, data):
    images_copy(box, data)
    (box / "imgs" / os.fsdecode(b"zz-\xff.jpg")).write_bytes(data.image.read_bytes())


def with_huge_png(box, data):
    images_copy(box, data)
    (box / "imgs" / "zz_huge.png").write_bytes(hostile.png_declaring(13000, 13000, colour=2))


def empty_folder(box, data):
    (box / "empty").mkdir()


def good_index(box, data):
    shutil.copytree(data.index, box / "out")


def index_copy(box, data):
    shutil.copytree(data.index, box / "idx")
    return {"idx": box / "idx"}


def user_folder(box, data):
    (box / "out").mkdir()
    (box / "out" / "thesis.tex").write_text("years of work")


def regular_file(box, data):
    (box / "out").write_text("a file")


def file_in_the_way(box, data):
    (box / "file.txt").write_text("a file")


def _coco(segmentations, **overrides):
    def setup(box, data):
        images_copy(box, data, 1)
        image = sorted((box / "imgs").iterdir())[0]
        hostile.write_json(box / "ann.json", hostile.coco_document([image], segmentations, **overrides))

    return setup


def _coco_text(text: bytes):
    def setup(box, data):
        images_copy(box, data, 1)
        (box / "ann.json").write_bytes(text)

    return setup


def coco_unknown_image(box, data):
    images_copy(box, data, 1)
    image = sorted((box / "imgs").iterdir())[0]
    document = hostile.coco_document([image], [[1, 1, 20, 1, 20, 20]])
    document["annotations"][0]["image_id"] = 999
    hostile.write_json(box / "ann.json", document)


def coco_no_segmentation(box, data):
    images_copy(box, data, 1)
    image = sorted((box / "imgs").iterdir())[0]
    document = hostile.coco_document([image], [[1, 1, 20, 1, 20, 20]])
    del document["annotations"][0]["segmentation"]
    hostile.write_json(box / "ann.json", document)


def coco_duplicate_name(box, data):
    images_copy(box, data, 1)
    image = sorted((box / "imgs").iterdir())[0]
    document = hostile.coco_document([image, image], [[1, 1, 20, 1, 20, 20]])
    document["images"][1]["id"] = 7
    hostile.write_json(box / "ann.json", document)


def coco_deep(box, data):
    images_copy(box, data, 1)
    (box / "ann.json").write_text("[" * 100000 + "]" * 100000)


def saliency_missing_maps(box, data):
    images_copy(box, data)
    (box / "sal").mkdir()


def saliency_wrong_size(box, data):
    images_copy(box, data)
    (box / "sal").mkdir()
    for path in (box / "imgs").iterdir():
        hostile.write_labels(box / "sal" / f"{path.stem}.png", hostile.np.zeros((10, 10)), mode="L")


# tampering with a copy of the index
def _tampered(change):
    def setup(box, data):
        extras = index_copy(box, data)
        change(box / "idx")
        return extras

    return setup


def _meta(key, value):
    return _tampered(lambda idx: hostile.set_index_meta(idx, key, value))


def _sql(statement):
    return _tampered(lambda idx: hostile.index_sql(idx, statement))


def _garbage_db(idx: Path):
    (idx / "segments.sqlite").write_bytes(os.urandom(8192))
    for suffix in ("-wal", "-shm"):
        (idx / f"segments.sqlite{suffix}").unlink(missing_ok=True)


def _empty_db(idx: Path):
    for name in ("segments.sqlite", "segments.sqlite-wal", "segments.sqlite-shm"):
        (idx / name).unlink(missing_ok=True)
    sqlite3.connect(idx / "segments.sqlite").close()


def _faiss_files(idx: Path) -> list[Path]:
    return sorted((idx / "faiss").glob("index-*.faiss"))


def _faiss_missing(idx: Path):
    for path in _faiss_files(idx):
        path.unlink()


def _faiss_garbage(idx: Path):
    for path in _faiss_files(idx):
        path.write_bytes(b"IxF2" + os.urandom(300))


def _victim_outside(idx: Path):
    (idx.parent / "victim.faiss").write_bytes(b"not an index, and not the index's to touch")
    hostile.set_index_meta(idx, "faiss_file", '"../../victim.faiss"')


def index_dir_empty(box, data):
    (box / "idx").mkdir()
    return {"idx": box / "idx"}


def index_is_file(box, data):
    (box / "idx").write_text("an index? no")
    return {"idx": box / "idx"}


def read_only_index(box, data):
    extras = index_copy(box, data)
    images_copy(box, data)
    from tests.reliability.harness import make_read_only

    make_read_only(box / "idx")
    return extras


def add_coco_huge(box, data):
    extras = index_copy(box, data)
    _coco([[[0, 0, 1e30, 0, 1e30, 1e30]]])(box, data)
    return extras


TAMPERED = {
    "garbage-database": _tampered(_garbage_db),
    "empty-database": _tampered(_empty_db),
    "format-99": _meta("format", "99"),
    "config-not-a-dict": _meta("config", "[]"),
    "config-not-json": _meta("config", "{"),
    "dim-wrong": _meta("dim", "7"),
    "faiss-file-outside": _tampered(_victim_outside),
    "faiss-file-missing": _tampered(_faiss_missing),
    "faiss-file-garbage": _tampered(_faiss_garbage),
    "row-deleted": _sql("DELETE FROM segments WHERE id = 3"),
    "segments-table-dropped": _sql("DROP TABLE segments"),
    "factory-missing": _sql("DELETE FROM meta WHERE key = 'factory'"),
    "ntotal-negative": _meta("ntotal", "-1"),
}

POLYGON = [2, 2, 40, 2, 40, 40, 2, 40]

BUILD = [
    case("build-missing-images", B, "{box}/nope", "--out", "{out}"),
    case("build-empty-folder", B, "{box}/empty", "--out", "{out}", setup=empty_folder),
    case("build-broken-image", B, "{box}/imgs", "--out", "{out}", setup=with_bad_image, contains=("zz_broken",)),
    case("build-out-is-images", B, "{box}/imgs", "--out", "{box}/imgs", "--overwrite", setup=images_copy),
    case("build-out-contains-images", B, "{box}/imgs", "--out", "{box}", "--overwrite", setup=images_copy),
    case("build-out-is-file", B, "{d.images}", "--out", "{out}", "--overwrite", setup=regular_file),
    case("build-out-under-file", B, "{d.images}", "--out", "{box}/file.txt/idx", setup=file_in_the_way),
    case("build-out-name-too-long", B, "{d.images}", "--out", "{box}/" + "i" * 300),
    case("build-out-user-folder-overwrite", B, "{d.images}", "--out", "{out}", "--overwrite", setup=user_folder),
    case(
        "build-no-segments-over-good-index",
        B,
        "{d.images}",
        "--out",
        "{out}",
        "--overwrite",
        "--min-area",
        "999999",
        setup=good_index,
    ),
    case("build-no-segments-fresh", B, "{d.images}", "--out", "{out}", "--min-area", "999999"),
    case("build-factory-bogus", B, "{d.images}", "--out", "{out}", "--factory", "Fastest"),
    case("build-factory-ivf0", B, "{d.images}", "--out", "{out}", "--factory", "IVF0,Flat"),
    # known only once the segments are counted: the extracted shards are kept for a rerun with another factory
    case(
        "build-factory-too-many-lists",
        B,
        "{d.images}",
        "--out",
        "{out}",
        "--factory",
        "IVF1000,Flat",
        out_may_change=True,
    ),
    case("build-factory-pq-not-dividing", B, "{d.images}", "--out", "{out}", "--factory", "PQ7"),
    case("build-pooling-bogus", B, "{d.images}", "--out", "{out}", "--pooling", "max"),
    case("build-min-area-zero", B, "{d.images}", "--out", "{out}", "--min-area", "0"),
    case("build-min-area-negative", B, "{d.images}", "--out", "{out}", "--min-area", "-1"),
    case("build-clusters-zero", B, "{d.images}", "--out", "{out}", "--clusters", "0"),
    case(
        "build-clusters-absurd",
        B,
        "{d.images}",
        "--out",
        "{out}",
        "--clusters",
        "1000000000",
        child=True,
        memory_mib=6000,
    ),
    case("build-proposals-bogus", B, "{d.images}", "--out", "{out}", "--proposals", "sam"),
    case("build-gt-without-layout", B, "{box}/imgs", "--out", "{out}", "--proposals", "gt", setup=images_copy),
    case("build-gt-kind-bogus", B, "{d.images}", "--out", "{out}", "--proposals", "gt", "--gt-kind", "part"),
    case("build-coco-without-file", B, "{d.images}", "--out", "{out}", "--proposals", "coco"),
    case("build-coco-missing-file", B, "{d.images}", "--out", "{out}", "--proposals", "coco", "--coco", "{box}/a.json"),
    case(
        "build-coco-malformed",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco_text(b'{"images": ['),
    ),
    case(
        "build-coco-list",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco_text(b"[1, 2, 3]"),
    ),
    case(
        "build-coco-not-utf8",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco_text(b'{"images": "\xff\xfe"}'),
    ),
    case(
        "build-coco-nested-deep",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=coco_deep,
    ),
    case(
        "build-coco-no-segmentation",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=coco_no_segmentation,
    ),
    case(
        "build-coco-unknown-image",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=coco_unknown_image,
    ),
    case(
        "build-coco-duplicate-name",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=coco_duplicate_name,
    ),
    case(
        "build-coco-polygon-1e30",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([[[0, 0, 1e30, 0, 1e30, 1e30]]]),
        child=True,
        contains=("annotation 1",),
    ),
    case(
        "build-coco-polygon-1e11",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([[[0, 0, 1e11, 0, 1e11, 1e11]]]),
        child=True,
    ),
    case(
        "build-coco-polygon-negative",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([[[-500, -500, -400, -500, -400, -400]]]),
    ),
    case(
        "build-coco-polygon-outside",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([[[2, 2, 5000, 2, 5000, 5000]]]),
    ),
    case(
        "build-coco-polygon-nan",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([[[float("nan"), 2, 40, 2, 40, 40]]]),
    ),
    case(
        "build-coco-polygon-odd",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([[[2, 2, 40, 2, 40]]]),
    ),
    case(
        "build-coco-polygon-text",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([[["a", "b", "c", "d", "e", "f"]]]),
    ),
    case(
        "build-coco-segmentation-text",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco(["a polygon"]),
    ),
    case(
        "build-coco-rle-garbage",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([{"size": [64, 64], "counts": "!!!!~~~~"}]),
    ),
    case(
        "build-coco-rle-negative",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([{"size": [64, 64], "counts": [10, -5, 100]}]),
        child=True,
    ),
    case(
        "build-coco-rle-overlong",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([{"size": [64, 64], "counts": [0, 4096, 100000, 7]}]),
        child=True,
    ),
    case(
        "build-coco-rle-huge-count",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([{"size": [64, 64], "counts": [0, 10**12]}]),
        child=True,
    ),
    case(
        "build-coco-rle-size-mismatch",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([{"size": [32, 32], "counts": [0, 1024]}]),
    ),
    case(
        "build-coco-image-size-mismatch",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=_coco([[POLYGON]], height=999),
    ),
    case(
        "build-saliency-missing-folder",
        B,
        "{d.images}",
        "--out",
        "{out}",
        "--proposals",
        "saliency",
        "--saliency",
        "{box}/sal",
    ),
    case(
        "build-saliency-no-maps",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "saliency",
        "--saliency",
        "{box}/sal",
        setup=saliency_missing_maps,
    ),
    case(
        "build-saliency-wrong-size",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "saliency",
        "--saliency",
        "{box}/sal",
        setup=saliency_wrong_size,
    ),
    case("build-saliency-threshold-above-1", B, "{d.images}", "--out", "{out}", "--saliency-threshold", "1.5"),
    case(
        "build-saliency-threshold-nan",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        "--proposals",
        "saliency",
        "--saliency",
        "{box}/sal",
        "--saliency-threshold",
        "nan",
        setup=saliency_missing_maps,
    ),
    case(
        "build-superpixels-bogus",
        B,
        "{d.images}",
        "--out",
        "{out}",
        "--proposals",
        "superpixels",
        "--superpixels",
        "watershed",
    ),
    case("build-resize-zero", B, "{d.images}", "--out", "{out}", "--resize", "fixed:0x0"),
    case("build-preprocess-unknown", B, "{d.images}", "--out", "{out}", "--preprocess", "lanczos"),
    case("build-weights-bogus", B, "{d.images}", "--out", "{out}", "--weights", "best"),
    case(
        "build-checkpoint-nan", B, "{d.images}", "--out", "{out}", "--checkpoint", "{box}/nan.pth", setup=nan_checkpoint
    ),
    case("build-batch-size-zero", B, "{d.images}", "--out", "{out}", "--batch-size", "0"),
    case("build-output-stride-5", B, "{d.images}", "--out", "{out}", "--output-stride", "5"),
    case("build-non-utf8-image-name", B, "{box}/imgs", "--out", "{out}", setup=with_non_utf8_image, child=True),
    case(
        "build-png-declaring-13000x13000",
        B,
        "{box}/imgs",
        "--out",
        "{out}",
        setup=with_huge_png,
        child=True,
        memory_mib=6000,
    ),
]

ADD = [
    case("add-index-missing", A, "{box}/idx", "{d.images}", out="{box}/idx"),
    case("add-index-is-file", A, "{idx}", "{d.images}", setup=index_is_file, out="{idx}"),
    case("add-index-empty-folder", A, "{idx}", "{d.images}", setup=index_dir_empty, out="{idx}"),
    *[
        case(f"add-index-{name}", A, "{idx}", "{d.images}", setup=setup, out="{idx}")
        for name, setup in TAMPERED.items()
    ],
    case("add-images-missing", A, "{idx}", "{box}/nope", setup=index_copy, out="{idx}"),
    case(
        "add-broken-image",
        A,
        "{idx}",
        "{box}/imgs",
        setup=lambda b, d: {**index_copy(b, d), **(with_bad_image(b, d) or {})},
        out="{idx}",
        contains=("zz_broken",),
    ),
    case("add-images-are-the-index", A, "{idx}", "{idx}", setup=index_copy, out="{idx}"),
    case("add-other-backbone", A, "{idx}", "{d.images}", "--backbone", "resnet18", setup=index_copy, out="{idx}"),
    case("add-other-weights", A, "{idx}", "{d.images}", "--weights", "random", setup=index_copy, out="{idx}"),
    case("add-other-resize", A, "{idx}", "{d.images}", "--resize", "fixed:32x32", setup=index_copy, out="{idx}"),
    case("add-proposals-bogus", A, "{idx}", "{d.images}", "--proposals", "sam", setup=index_copy, out="{idx}"),
    case("add-min-area-zero", A, "{idx}", "{d.images}", "--min-area", "0", setup=index_copy, out="{idx}"),
    case("add-clusters-zero", A, "{idx}", "{d.images}", "--clusters", "0", setup=index_copy, out="{idx}"),
    case("add-batch-size-zero", A, "{idx}", "{d.images}", "--batch-size", "0", setup=index_copy, out="{idx}"),
    case(
        "add-checkpoint-nan",
        A,
        "{idx}",
        "{d.images}",
        "--checkpoint",
        "{box}/nan.pth",
        setup=lambda b, d: {**index_copy(b, d), **(nan_checkpoint(b, d) or {})},
        out="{idx}",
    ),
    case(
        "add-coco-polygon-1e30",
        A,
        "{idx}",
        "{box}/imgs",
        "--proposals",
        "coco",
        "--coco",
        "{box}/ann.json",
        setup=add_coco_huge,
        out="{idx}",
        child=True,
    ),
    case(
        "add-read-only-index",
        A,
        "{idx}",
        "{box}/imgs",
        setup=read_only_index,
        out="{idx}",
        child=True,
        read_only=True,
        contains=("read-only",),
    ),
]

INFO = [
    case("info-index-missing", N, "{box}/idx", out=None),
    case("info-index-is-file", N, "{idx}", setup=index_is_file, out=None),
    case("info-index-empty-folder", N, "{idx}", setup=index_dir_empty, out=None),
    *[case(f"info-index-{name}", N, "{idx}", setup=setup, out=None) for name, setup in TAMPERED.items()],
]

CASES = [*BUILD, *ADD, *INFO]
