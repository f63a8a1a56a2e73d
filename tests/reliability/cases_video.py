"""`video propagate`: broken frame folders and videos, bad masks, outputs and overlays over inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tests.reliability import hostile
from tests.reliability.cases import case
from tests.reliability.cases_features import nan_checkpoint

V = "video propagate"
CLIP = ("{d.clip}", "--mask", "{d.clip_mask}")


def clip_copy(box: Path, data) -> dict:
    shutil.copytree(data.clip, box / "clip")
    (box / "mask.png").write_bytes(data.clip_mask.read_bytes())
    return {"clip": box / "clip", "mask": box / "mask.png", "frame": box / "clip" / "00001.jpg"}


def _clip_changed(change):
    def setup(box, data):
        extras = clip_copy(box, data)
        change(box / "clip", box / "mask.png")
        return extras

    return setup


def gap(clip, mask):
    (clip / "00002.jpg").unlink()


def mixed_sizes(clip, mask):
    hostile.write_rgb(clip / "00003.jpg", 32, 48)


def unnumbered(clip, mask):
    shutil.copy(clip / "00000.jpg", clip / "cover.jpg")


def corrupt_frame(clip, mask):
    (clip / "00002.jpg").write_bytes((clip / "00002.jpg").read_bytes()[:300])


def mask_wrong_size(clip, mask):
    hostile.write_labels(mask, np.ones((10, 10)), mode="P")


def mask_empty(clip, mask):
    hostile.write_labels(mask, np.zeros((64, 96)), mode="P")


def mask_off_palette(clip, mask):
    from PIL import Image

    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[5:30, 5:30] = (9, 9, 9)
    Image.fromarray(rgb).save(mask)


def mask_16_bit(clip, mask):
    values = np.zeros((64, 96), np.uint16)
    values[10:30, 10:30] = 60000
    hostile.write_gray16(mask, values)


def huge_single_frame(box, data):
    (box / "big").mkdir()
    (box / "big" / "00000.png").write_bytes(hostile.png_declaring(13000, 13000, colour=2))
    (box / "big_mask.png").write_bytes(hostile.png_declaring(13000, 13000, colour=0))


def empty_folder(box, data):
    (box / "empty").mkdir()


def text_as_mp4(box, data):
    (box / "clip.mp4").write_text("no video here\n" * 50)


def zero_mp4(box, data):
    (box / "clip.mp4").write_bytes(b"")


def video_copy(box, data):
    (box / "clip.mp4").write_bytes(data.video.read_bytes())
    (box / "mask.png").write_bytes(data.clip_mask.read_bytes())


def foreign_out(box, data):
    (box / "out").mkdir()
    (box / "out" / "notes.txt").write_text("mine")


def overlay_folder(box, data):
    (box / "strip.png").mkdir()
    (box / "strip.png" / "keep.txt").write_text("mine")


def file_in_the_way(box, data):
    (box / "file.txt").write_text("a file")


CASES = [
    case("video-source-missing", V, "{box}/nope.mp4", "--mask", "{d.clip_mask}", "--out", "{out}"),
    case("video-folder-empty", V, "{box}/empty", "--mask", "{d.clip_mask}", "--out", "{out}", setup=empty_folder),
    case("video-folder-gap", V, "{clip}", "--mask", "{mask}", "--out", "{out}", setup=_clip_changed(gap)),
    case(
        "video-folder-mixed-sizes", V, "{clip}", "--mask", "{mask}", "--out", "{out}", setup=_clip_changed(mixed_sizes)
    ),
    case(
        "video-folder-unnumbered-frame",
        V,
        "{clip}",
        "--mask",
        "{mask}",
        "--out",
        "{out}",
        setup=_clip_changed(unnumbered),
    ),
    case(
        "video-folder-corrupt-frame",
        V,
        "{clip}",
        "--mask",
        "{mask}",
        "--out",
        "{out}",
        setup=_clip_changed(corrupt_frame),
    ),
    case("video-text-as-mp4", V, "{box}/clip.mp4", "--mask", "{d.clip_mask}", "--out", "{out}", setup=text_as_mp4),
    case("video-zero-byte-mp4", V, "{box}/clip.mp4", "--mask", "{d.clip_mask}", "--out", "{out}", setup=zero_mp4),
    case("video-mask-missing", V, "{d.clip}", "--mask", "{box}/nope.png", "--out", "{out}"),
    case("video-preprocess-unknown", V, "{d.clip}", "--mask", "{d.clip_mask}", "--out", "{out}", "--preprocess", "x"),
    case(
        "video-mask-wrong-size", V, "{clip}", "--mask", "{mask}", "--out", "{out}", setup=_clip_changed(mask_wrong_size)
    ),
    case("video-mask-empty", V, "{clip}", "--mask", "{mask}", "--out", "{out}", setup=_clip_changed(mask_empty)),
    case(
        "video-mask-off-palette",
        V,
        "{clip}",
        "--mask",
        "{mask}",
        "--out",
        "{out}",
        setup=_clip_changed(mask_off_palette),
    ),
    case("video-mask-16-bit", V, "{clip}", "--mask", "{mask}", "--out", "{out}", setup=_clip_changed(mask_16_bit)),
    case("video-overlay-gif", V, *CLIP, "--out", "{out}", "--overlay", "{box}/o.gif"),
    case(
        "video-overlay-is-folder",
        V,
        *CLIP,
        "--out",
        "{out}",
        "--overlay",
        "{box}/strip.png",
        "--overwrite",
        setup=overlay_folder,
    ),
    case(
        "video-overlay-under-file",
        V,
        *CLIP,
        "--out",
        "{out}",
        "--overlay",
        "{box}/file.txt/s.png",
        setup=file_in_the_way,
    ),
    case(
        "video-overlay-is-mask",
        V,
        "{clip}",
        "--mask",
        "{mask}",
        "--out",
        "{out}",
        "--overlay",
        "{mask}",
        "--overwrite",
        setup=clip_copy,
    ),
    case(
        "video-overlay-is-frame",
        V,
        "{clip}",
        "--mask",
        "{mask}",
        "--out",
        "{out}",
        "--overlay",
        "{frame}",
        "--overwrite",
        setup=clip_copy,
    ),
    case(
        "video-overlay-is-video",
        V,
        "{box}/clip.mp4",
        "--mask",
        "{box}/mask.png",
        "--out",
        "{out}",
        "--overlay",
        "{box}/clip.mp4",
        "--overwrite",
        setup=video_copy,
    ),
    case(
        "video-out-contains-inputs",
        V,
        "{clip}",
        "--mask",
        "{mask}",
        "--out",
        "{box}",
        "--overwrite",
        setup=clip_copy,
        out="{box}",
    ),
    case(
        "video-out-is-frames",
        V,
        "{clip}",
        "--mask",
        "{mask}",
        "--out",
        "{clip}",
        "--overwrite",
        setup=clip_copy,
        out="{clip}",
    ),
    case(
        "video-out-inside-frames",
        V,
        "{clip}",
        "--mask",
        "{mask}",
        "--out",
        "{clip}/masks",
        setup=clip_copy,
        out="{clip}/masks",
    ),
    case(
        "video-out-is-mask",
        V,
        "{clip}",
        "--mask",
        "{mask}",
        "--out",
        "{mask}",
        "--overwrite",
        setup=clip_copy,
        out="{mask}",
    ),
    case(
        "video-out-is-video",
        V,
        "{box}/clip.mp4",
        "--mask",
        "{box}/mask.png",
        "--out",
        "{box}/clip.mp4",
        "--overwrite",
        setup=video_copy,
        out="{box}/clip.mp4",
    ),
    case("video-out-not-empty", V, *CLIP, "--out", "{out}", setup=foreign_out),
    case("video-out-under-file", V, *CLIP, "--out", "{box}/file.txt/m", setup=file_in_the_way),
    case("video-out-name-too-long", V, *CLIP, "--out", "{box}/" + "m" * 300),
    case("video-every-zero", V, *CLIP, "--out", "{out}", "--overlay", "{box}/s.png", "--every", "0"),
    case("video-every-negative", V, *CLIP, "--out", "{out}", "--overlay", "{box}/s.png", "--every", "-1"),
    case("video-temperature-nan", V, *CLIP, "--out", "{out}", "--temperature", "nan"),
    case("video-radius-negative", V, *CLIP, "--out", "{out}", "--radius", "-5"),
    case("video-radius-nan", V, *CLIP, "--out", "{out}", "--radius", "nan"),
    case("video-topk-zero", V, *CLIP, "--out", "{out}", "--topk", "0"),
    case("video-context-negative", V, *CLIP, "--out", "{out}", "--context", "-1"),
    case("video-checkpoint-nan", V, *CLIP, "--out", "{out}", "--checkpoint", "{box}/nan.pth", setup=nan_checkpoint),
    case(
        "video-frame-declaring-13000x13000",
        V,
        "{box}/big",
        "--mask",
        "{box}/big_mask.png",
        "--out",
        "{out}",
        setup=huge_single_frame,
        child=True,
        memory_mib=6000,
    ),
]
