"""`query`: queries that cannot be answered, galleries written over inputs, tampered indexes."""

from __future__ import annotations

import numpy as np

from tests.reliability import hostile
from tests.reliability.cases import case
from tests.reliability.cases_features import nan_checkpoint
from tests.reliability.cases_index import TAMPERED

Q = "query"


def mask_of_size(height: int, width: int, value: int = 1):
    def setup(box, data):
        labels = np.zeros((height, width), np.uint8)
        labels[: height // 2, : width // 2] = value
        hostile.write_labels(box / "mask.png", labels, mode="L")

    return setup


def off_palette_mask(box, data):
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[10:30, 10:30] = (13, 200, 77)
    from PIL import Image

    Image.fromarray(rgb).save(box / "mask.png")


def sixteen_bit_mask(box, data):
    values = np.zeros((64, 64), np.uint16)
    values[8:40, 8:40] = 40000
    hostile.write_gray16(box / "mask.png", values)


def copies(box, data):
    (box / "img.jpg").write_bytes(data.image.read_bytes())
    (box / "mask.png").write_bytes(data.image_mask.read_bytes())


def folder_in_the_way(box, data):
    (box / "gallery.png").mkdir()
    (box / "gallery.png" / "keep.txt").write_text("mine")


def file_in_the_way(box, data):
    (box / "file.txt").write_text("a file")


def broken_image(box, data):
    (box / "img.jpg").write_bytes(data.image.read_bytes()[:300])


def huge_image(box, data):
    (box / "huge.png").write_bytes(hostile.png_declaring(13000, 13000, colour=2))


def index_copy(box, data):
    import shutil

    shutil.copytree(data.index, box / "idx")


MASK = ("{d.image}", "--mask", "{d.image_mask}")

CASES = [
    case("query-index-missing", Q, "{box}/idx", "--segment-id", "0", out=None),
    case("query-nothing-to-query", Q, "{d.index}", out=None),
    case("query-two-queries", Q, "{d.index}", *MASK, "--segment-id", "0", out=None),
    case("query-mask-without-image", Q, "{d.index}", "--mask", "{d.image_mask}", out=None),
    case("query-image-missing", Q, "{d.index}", "{box}/nope.jpg", "--mask", "{d.image_mask}", out=None),
    case("query-mask-missing", Q, "{d.index}", "{d.image}", "--mask", "{box}/nope.png", out=None),
    case(
        "query-mask-wrong-size",
        Q,
        "{d.index}",
        "{d.image}",
        "--mask",
        "{box}/mask.png",
        setup=mask_of_size(10, 12),
        out=None,
    ),
    case(
        "query-mask-empty",
        Q,
        "{d.index}",
        "{d.image}",
        "--mask",
        "{box}/mask.png",
        setup=mask_of_size(64, 64, 0),
        out=None,
    ),
    case(
        "query-mask-off-palette",
        Q,
        "{d.index}",
        "{d.image}",
        "--mask",
        "{box}/mask.png",
        setup=off_palette_mask,
        out=None,
    ),
    case(
        "query-mask-16-bit", Q, "{d.index}", "{d.image}", "--mask", "{box}/mask.png", setup=sixteen_bit_mask, out=None
    ),
    case(
        "query-image-broken", Q, "{d.index}", "{box}/img.jpg", "--mask", "{d.image_mask}", setup=broken_image, out=None
    ),
    case("query-segment-id-negative", Q, "{d.index}", "--segment-id", "-1", out=None),
    case("query-segment-id-absent", Q, "{d.index}", "--segment-id", "1000000000", out=None),
    case("query-segment-id-huge", Q, "{d.index}", "--segment-id", str(10**30), out=None),
    case("query-k-zero", Q, "{d.index}", "--segment-id", "0", "-k", "0", out=None),
    case("query-k-negative", Q, "{d.index}", "--segment-id", "0", "-k", "-5", out=None),
    case("query-search-params-bogus", Q, "{d.index}", "--segment-id", "0", "--search-params", "speed=11", out=None),
    case(
        "query-search-params-nprobe-on-flat",
        Q,
        "{d.index}",
        "--segment-id",
        "0",
        "--search-params",
        "nprobe=-1",
        out=None,
    ),
    case(
        "query-gallery-is-folder",
        Q,
        "{d.index}",
        "--segment-id",
        "0",
        "--gallery",
        "{box}/gallery.png",
        setup=folder_in_the_way,
        out="{box}/gallery.png",
    ),
    case(
        "query-gallery-under-file",
        Q,
        "{d.index}",
        "--segment-id",
        "0",
        "--gallery",
        "{box}/file.txt/g.png",
        setup=file_in_the_way,
        out="{box}/file.txt/g.png",
    ),
    case(
        "query-gallery-is-query-image",
        Q,
        "{d.index}",
        "{box}/img.jpg",
        "--mask",
        "{box}/mask.png",
        "--gallery",
        "{box}/img.jpg",
        setup=copies,
        out="{box}/img.jpg",
    ),
    case(
        "query-gallery-is-mask",
        Q,
        "{d.index}",
        "{box}/img.jpg",
        "--mask",
        "{box}/mask.png",
        "--gallery",
        "{box}/mask.png",
        setup=copies,
        out="{box}/mask.png",
    ),
    case(
        "query-gallery-inside-index",
        Q,
        "{box}/idx",
        "--segment-id",
        "0",
        "--gallery",
        "{box}/idx/g.png",
        setup=index_copy,
        out="{box}/idx/g.png",
    ),
    case("query-proposals-bogus", Q, "{d.index}", "{d.image}", "--proposals", "sam", out=None),
    case("query-proposals-coco-without-file", Q, "{d.index}", "{d.image}", "--proposals", "coco", out=None),
    case(
        "query-checkpoint-nan", Q, "{d.index}", *MASK, "--checkpoint", "{box}/nan.pth", setup=nan_checkpoint, out=None
    ),
    case("query-index-garbage-database", Q, "{idx}", "--segment-id", "0", setup=TAMPERED["garbage-database"], out=None),
    case(
        "query-index-config-not-a-dict", Q, "{idx}", "--segment-id", "0", setup=TAMPERED["config-not-a-dict"], out=None
    ),
    case("query-index-faiss-garbage", Q, "{idx}", "--segment-id", "0", setup=TAMPERED["faiss-file-garbage"], out=None),
    case(
        "query-image-declaring-13000x13000",
        Q,
        "{d.index}",
        "{box}/huge.png",
        "--proposals",
        "kmeans",
        setup=huge_image,
        out=None,
        child=True,
        memory_mib=6000,
    ),
]
