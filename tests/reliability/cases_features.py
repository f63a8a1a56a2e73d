"""`features`: malformed images and videos, outputs in the way, bad options, bad checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

from tests.reliability import hostile
from tests.reliability.cases import case

F = "features"


def _folder(box: Path, *files: tuple[str, bytes]) -> Path:
    folder = box / "imgs"
    folder.mkdir()
    for name, content in files:
        (folder / name).write_bytes(content)
    return folder


def _with_image(box: Path, data, name: str = "img.jpg") -> dict:
    (box / name).write_bytes(data.image.read_bytes())
    return {"img": box / name}


def zero_byte(box, data):
    _folder(box, ("zero.png", b""))


def text_as_jpg(box, data):
    _folder(box, ("notes.jpg", b"these are not pixels\n" * 20))


def truncated_jpeg(box, data):
    folder = _folder(box)
    hostile.truncated_copy(data.image, folder / "cut.jpg", 0.4)


def corrupt_png(box, data):
    folder = _folder(box)
    hostile.write_rgb(folder / "ok.png", 40, 40)
    hostile.flipped_copy(folder / "ok.png", folder / "bad.png")
    (folder / "ok.png").unlink()


def out_folder(box, data):
    (box / "out").mkdir()
    (box / "out" / "keep.txt").write_text("mine")


def regular_file(box, data):
    (box / "file.txt").write_text("a file, not a folder")


def read_only_folder(box, data):
    from tests.reliability.harness import make_read_only

    (box / "ro").mkdir()
    make_read_only(box / "ro")


def image_copy(box, data):
    return _with_image(box, data)


def image_link(box, data):
    extras = _with_image(box, data)
    (box / "link.npz").symlink_to(extras["img"])
    return extras


def images_copy(box, data):
    folder = box / "imgs"
    folder.mkdir()
    for path in sorted(data.images.iterdir())[:2]:
        (folder / path.name).write_bytes(path.read_bytes())


def empty_folder(box, data):
    (box / "empty").mkdir()


def nan_checkpoint(box, data):
    hostile.save_checkpoint(box / "nan.pth", hostile.mobilenet_state(fill=float("nan")))


def one_nan_checkpoint(box, data):
    hostile.save_checkpoint(box / "one_nan.pth", hostile.one_nan_tensor(hostile.mobilenet_state(seed=2)))


def inf_checkpoint(box, data):
    hostile.save_checkpoint(box / "inf.pth", hostile.mobilenet_state(fill=float("inf")))


def garbage_checkpoint(box, data):
    (box / "garbage.pth").write_bytes(os.urandom(4096))


def truncated_checkpoint(box, data):
    hostile.truncated_copy(data.checkpoint, box / "cut.pth", 0.5)


def list_checkpoint(box, data):
    hostile.save_checkpoint(box / "list.pth", [1, 2, 3])


def malicious_checkpoint(box, data):
    from tests.checkpoint_files import malicious_checkpoint as build

    build(box / "evil.pth", box / "PWNED")


def huge_png(box, data):
    folder = _folder(box)
    (folder / "huge.png").write_bytes(hostile.png_declaring(13000, 13000, colour=2))


def zero_size_png(box, data):
    folder = _folder(box)
    (folder / "zero_size.png").write_bytes(hostile.png_declaring(0, 0))


def non_utf8_name(box, data):
    folder = _folder(box)
    (folder / os.fsdecode(b"photo-\xff\xfe.jpg")).write_bytes(data.image.read_bytes())


def folder_named_jpg(box, data):
    (box / "x.jpg").mkdir()


def text_as_mp4(box, data):
    (box / "clip.mp4").write_text("not a video\n" * 100)


def zero_mp4(box, data):
    (box / "clip.mp4").write_bytes(b"")


def video_copy(box, data):
    (box / "clip.mp4").write_bytes(data.video.read_bytes())


CASES = [
    case("features-missing-input", F, "{box}/nope.jpg", "--out", "{out}"),
    case("features-empty-folder", F, "{box}/empty", "--out", "{out}", setup=empty_folder),
    case("features-zero-byte-png", F, "{box}/imgs", "--out", "{out}", setup=zero_byte),
    case("features-text-as-jpg", F, "{box}/imgs", "--out", "{out}", setup=text_as_jpg),
    case("features-truncated-jpeg", F, "{box}/imgs", "--out", "{out}", setup=truncated_jpeg),
    case("features-corrupt-png", F, "{box}/imgs", "--out", "{out}", setup=corrupt_png),
    case("features-png-declaring-0x0", F, "{box}/imgs", "--out", "{out}", setup=zero_size_png),
    case("features-folder-named-jpg", F, "{box}/x.jpg", "--out", "{out}", setup=folder_named_jpg),
    case("features-text-as-mp4", F, "{box}/clip.mp4", "--out", "{out}", setup=text_as_mp4),
    case("features-zero-byte-mp4", F, "{box}/clip.mp4", "--out", "{out}", setup=zero_mp4),
    case("features-out-is-folder", F, "{d.image}", "--out", "{out}", "--overwrite", setup=out_folder),
    case("features-out-under-file", F, "{d.image}", "--out", "{box}/file.txt/f.npz", setup=regular_file),
    case(
        "features-out-read-only-folder",
        F,
        "{d.image}",
        "--out",
        "{box}/ro/f.npz",
        setup=read_only_folder,
        out="{box}/ro/f.npz",
        child=True,
        read_only=True,
    ),
    case("features-out-name-too-long", F, "{d.image}", "--out", "{box}/" + "n" * 300 + ".npz"),
    case("features-out-nul-byte", F, "{d.image}", "--out", "{box}/a\0b.npz"),
    case("features-out-is-cwd", F, "{d.image}", "--out", "", "--overwrite", out=None),
    case("features-out-equals-input", F, "{img}", "--out", "{img}", "--overwrite", setup=image_copy, out="{img}"),
    case(
        "features-out-links-to-input",
        F,
        "{img}",
        "--out",
        "{box}/link.npz",
        "--overwrite",
        setup=image_link,
        out="{box}/link.npz",
    ),
    case("features-out-is-input-folder", F, "{box}/imgs", "--out", "{box}/imgs", "--overwrite", setup=images_copy),
    case("features-out-inside-input-folder", F, "{box}/imgs", "--out", "{box}/imgs/f.npz", setup=images_copy),
    case(
        "features-out-equals-input-video",
        F,
        "{box}/clip.mp4",
        "--out",
        "{box}/clip.mp4",
        "--overwrite",
        setup=video_copy,
        out="{box}/clip.mp4",
    ),
    case("features-resize-zero", F, "{d.image}", "--out", "{out}", "--resize", "fixed:0x0"),
    case("features-resize-short-zero", F, "{d.image}", "--out", "{out}", "--resize", "short:0"),
    case("features-resize-bogus", F, "{d.image}", "--out", "{out}", "--resize", "half"),
    case("features-preprocess-unknown", F, "{d.image}", "--out", "{out}", "--preprocess", "lanczos"),
    case(
        "features-resize-absurd",
        F,
        "{d.image}",
        "--out",
        "{out}",
        "--resize",
        "fixed:100000x100000",
        child=True,
        memory_mib=6000,
    ),
    case("features-dtype-int8", F, "{d.image}", "--out", "{out}", "--dtype", "int8"),
    case("features-output-stride-7", F, "{d.image}", "--out", "{out}", "--output-stride", "7"),
    case("features-output-stride-0", F, "{d.image}", "--out", "{out}", "--output-stride", "0"),
    case("features-output-stride-negative", F, "{d.image}", "--out", "{out}", "--output-stride", "-8"),
    case("features-layer-unknown", F, "{d.image}", "--out", "{out}", "--layer", "layer9"),
    case("features-backbone-unknown", F, "{d.image}", "--out", "{out}", "--backbone", "vgg16"),
    case("features-weights-unknown", F, "{d.image}", "--out", "{out}", "--weights", "imagenet-best"),
    case("features-weights-random-seed-text", F, "{d.image}", "--out", "{out}", "--weights", "random:abc"),
    case("features-checkpoint-missing", F, "{d.image}", "--out", "{out}", "--checkpoint", "{box}/none.pth"),
    case(
        "features-checkpoint-garbage",
        F,
        "{d.image}",
        "--out",
        "{out}",
        "--checkpoint",
        "{box}/garbage.pth",
        setup=garbage_checkpoint,
    ),
    case(
        "features-checkpoint-malicious",
        F,
        "{d.image}",
        "--out",
        "{out}",
        "--checkpoint",
        "{box}/evil.pth",
        setup=malicious_checkpoint,
        contains=("unsafe",),
    ),
    case(
        "features-checkpoint-all-nan",
        F,
        "{d.image}",
        "--out",
        "{out}",
        "--checkpoint",
        "{box}/nan.pth",
        setup=nan_checkpoint,
        contains=("nan",),
    ),
    case(
        "features-checkpoint-one-nan",
        F,
        "{d.image}",
        "--out",
        "{out}",
        "--checkpoint",
        "{box}/one_nan.pth",
        setup=one_nan_checkpoint,
        contains=("nan",),
    ),
    case(
        "features-checkpoint-inf",
        F,
        "{d.image}",
        "--out",
        "{out}",
        "--checkpoint",
        "{box}/inf.pth",
        setup=inf_checkpoint,
        contains=("inf",),
    ),
    case(
        "features-checkpoint-truncated",
        F,
        "{d.image}",
        "--out",
        "{out}",
        "--checkpoint",
        "{box}/cut.pth",
        setup=truncated_checkpoint,
    ),
    case(
        "features-checkpoint-list",
        F,
        "{d.image}",
        "--out",
        "{out}",
        "--checkpoint",
        "{box}/list.pth",
        setup=list_checkpoint,
    ),
    case(
        "features-checkpoint-wrong-architecture",
        F,
        "{d.image}",
        "--out",
        "{out}",
        "--checkpoint",
        "{d.checkpoint}",
        "--backbone",
        "resnet18",
    ),
    case("features-device-bogus", F, "{d.image}", "--out", "{out}", "--device", "tpu"),
    case("features-device-absent-gpu", F, "{d.image}", "--out", "{out}", "--device", "cuda:99"),
    case("features-batch-size-zero", F, "{d.image}", "--out", "{out}", "--batch-size", "0"),
    case("features-batch-size-negative", F, "{d.image}", "--out", "{out}", "--batch-size", "-3"),
    case("features-batch-size-text", F, "{d.image}", "--out", "{out}", "--batch-size", "many"),
    case("features-no-out", F, "{d.image}", out=None),
    case(
        "features-png-declaring-13000x13000",
        F,
        "{box}/imgs",
        "--out",
        "{out}",
        setup=huge_png,
        child=True,
        memory_mib=6000,
        contains=("13000",),
    ),
    case("features-non-utf8-file-name", F, "{box}/imgs", "--out", "{out}", setup=non_utf8_name, child=True),
]
