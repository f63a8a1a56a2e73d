"""`jhmdb propagate/evaluate`, `vip propagate/evaluate`, `synth jhmdb/vip`: broken JHMDB and VIP layouts,
hostile joint files, split files and video lists, tampered results, outputs over the datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from scipy.io import savemat

from tests.reliability import hostile
from tests.reliability.cases import case
from tests.reliability.cases_davis import file_in_the_way, foreign_files, regular_file
from tests.reliability.cases_features import nan_checkpoint

JP, JE, VP, VE = "jhmdb propagate", "jhmdb evaluate", "vip propagate", "vip evaluate"
J = ("--jhmdb-root", "{d.jhmdb}")
V = ("--vip-root", "{d.vip}")
WALK = "Rename_Images/walk"


# ------------------------------------------------------------------------------------------ JHMDB setups
def jhmdb_copy(box: Path, data) -> dict:
    shutil.copytree(data.jhmdb, box / "jhmdb")
    video = data.jhmdb_video
    return {
        "jhmdb": box / "jhmdb",
        "frames": box / "jhmdb" / WALK / video,
        "mat": box / "jhmdb" / "joint_positions" / "walk" / video / "joint_positions.mat",
        "split": box / "jhmdb" / "splits" / "walk_test_split1.txt",
    }


def _jhmdb_changed(change):
    def setup(box, data):
        extras = jhmdb_copy(box, data)
        change(extras)
        return extras

    return setup


def _mat(values) -> callable:
    return lambda e: savemat(e["mat"], {"pos_img": values})


def escaping_video(e):
    shutil.copytree(e["frames"], e["jhmdb"] / "Rename_Images" / "escape")
    shutil.copytree(e["mat"].parent, e["jhmdb"] / "joint_positions" / "escape")
    e["split"].write_text("../escape.avi 2\n")


def no_frames(e):
    for frame in e["frames"].iterdir():
        frame.unlink()


def resized_later_frame(e):
    hostile.write_rgb(e["frames"] / "00002.png", 32, 48)


def jhmdb_results_copy(box: Path, data) -> dict:
    shutil.copytree(data.jhmdb_results, box / "res")
    return {"res": box / "res", "video": data.jhmdb_video}


def _jhmdb_results_changed(change):
    def setup(box, data):
        extras = jhmdb_results_copy(box, data)
        (box / "victim").mkdir()
        (box / "victim" / "precious.txt").write_text("not the toolkit's")
        change(extras["res"], extras["video"])
        return extras

    return setup


def escaping_record(res: Path, video: str):
    record = res / "propagation.json"
    document = json.loads(record.read_text())
    document["sequences"]["../victim"] = document["sequences"][video]
    record.write_text(json.dumps(document))


def _joints(text: str):
    return lambda res, video: (res / video / "joints.json").write_text(text)


# ------------------------------------------------------------------------------------------ VIP setups
def vip_copy(box: Path, data) -> dict:
    shutil.copytree(data.vip, box / "vip")
    first = sorted((box / "vip" / "Category_ids" / "videos1").iterdir())[0]
    return {"vip": box / "vip", "first": first, "list": box / "vip" / "lists" / "val_videos.txt"}


def _vip_changed(change):
    def setup(box, data):
        extras = vip_copy(box, data)
        change(extras)
        return extras

    return setup


def _first_parts(values: np.ndarray):
    return lambda e: hostile.write_labels(e["first"], values, mode="L")


def vip_results_copy(box: Path, data) -> dict:
    shutil.copytree(data.vip_results, box / "res")
    return {"res": box / "res", "mask": sorted((box / "res" / "videos1").glob("*.png"))[0]}


def _vip_results_changed(change):
    def setup(box, data):
        extras = vip_results_copy(box, data)
        change(extras["mask"])
        return extras

    return setup


def foreign_folder(box, data):
    (box / "out").mkdir()
    (box / "out" / "notes.txt").write_text("mine")


CASES_JHMDB = [
    case("jhmdb-root-missing", JP, "--jhmdb-root", "{box}/nope", "--out", "{out}"),
    case("jhmdb-root-empty", JP, "--jhmdb-root", "{box}", "--out", "{out}"),
    case("jhmdb-split-4", JP, *J, "--out", "{out}", "--split", "4"),
    case("jhmdb-split-absent", JP, *J, "--out", "{out}", "--split", "2"),
    case("jhmdb-splits-folder-missing", JP, *J, "--out", "{out}", "--splits", "{box}/none"),
    case(
        "jhmdb-split-line-garbage",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(lambda e: e["split"].write_text("clip 7 x\n")),
    ),
    case(
        "jhmdb-split-non-utf8",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(lambda e: e["split"].write_bytes(b"clip\xff.avi 2\n")),
    ),
    case(
        "jhmdb-split-video-escapes-out",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(escaping_video),
        contains=("../escape",),
    ),
    case(
        "jhmdb-video-without-frames",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(no_frames),
    ),
    case(
        "jhmdb-joints-garbage",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(lambda e: e["mat"].write_bytes(b"MATLAB 5.0 MAT-file garbage" * 8)),
    ),
    case(
        "jhmdb-joints-wrong-shape",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(_mat(np.ones((2, 14, 3)))),
    ),
    case(
        "jhmdb-joints-nan",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(_mat(np.full((2, 15, 3), np.nan))),
    ),
    case(
        "jhmdb-joints-text",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(_mat(np.array(["a" * 15] * 2))),
    ),
    case(
        "jhmdb-first-frame-truncated",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(lambda e: (e["frames"] / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")),
    ),
    case(
        "jhmdb-later-frame-resized",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{out}",
        setup=_jhmdb_changed(resized_later_frame),
        out_may_change=True,
    ),
    case("jhmdb-videos-unknown", JP, *J, "--out", "{out}", "--videos", "bear"),
    case("jhmdb-videos-training", JP, *J, "--out", "{out}", "--videos", "synth_wave_02"),
    case("jhmdb-sigma-zero", JP, *J, "--out", "{out}", "--sigma", "0"),
    case("jhmdb-sigma-nan", JP, *J, "--out", "{out}", "--sigma", "nan"),
    case("jhmdb-readout-topk-zero", JP, *J, "--out", "{out}", "--readout-topk", "0"),
    case("jhmdb-overlay-bogus", JP, *J, "--out", "{out}", "--overlay", "gif"),
    case("jhmdb-preset-unknown", JP, *J, "--out", "{out}", "--preset", "stm"),
    case("jhmdb-temperature-nan", JP, *J, "--out", "{out}", "--temperature", "nan"),
    case("jhmdb-radius-negative", JP, *J, "--out", "{out}", "--radius", "-1"),
    case("jhmdb-resize-zero", JP, *J, "--out", "{out}", "--resize", "fixed:0x0"),
    case("jhmdb-checkpoint-nan", JP, *J, "--out", "{out}", "--checkpoint", "{box}/nan.pth", setup=nan_checkpoint),
    case(
        "jhmdb-out-is-root",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{jhmdb}",
        "--overwrite",
        setup=jhmdb_copy,
        out="{jhmdb}",
    ),
    case(
        "jhmdb-out-is-video-frames",
        JP,
        "--jhmdb-root",
        "{jhmdb}",
        "--out",
        "{frames}",
        "--overwrite",
        setup=jhmdb_copy,
        out="{frames}",
    ),
    case("jhmdb-out-is-file", JP, *J, "--out", "{out}", "--overwrite", setup=regular_file),
    case("jhmdb-out-under-file", JP, *J, "--out", "{box}/file.txt/res", setup=file_in_the_way),
    case("jhmdb-out-foreign-files", JP, *J, "--out", "{out}", setup=foreign_files),
    case(
        "jhmdb-record-escaping-name",
        JP,
        *J,
        "--out",
        "{res}",
        "--context",
        "3",
        "--overwrite",
        setup=_jhmdb_results_changed(escaping_record),
        out="{res}",
        contains=("propagation.json",),
    ),
    case(
        "jhmdb-record-garbage",
        JP,
        *J,
        "--out",
        "{res}",
        setup=_jhmdb_results_changed(lambda res, video: (res / "propagation.json").write_text("{not json")),
        out="{res}",
    ),
    case("jhmdb-evaluate-results-missing", JE, *J, "--results", "{box}/nope", out=None),
    case(
        "jhmdb-evaluate-joints-missing",
        JE,
        *J,
        "--results",
        "{res}",
        setup=_jhmdb_results_changed(lambda res, video: (res / video / "joints.json").unlink()),
        out=None,
    ),
    case(
        "jhmdb-evaluate-joints-garbage",
        JE,
        *J,
        "--results",
        "{res}",
        setup=_jhmdb_results_changed(_joints("{not json")),
        out=None,
    ),
    case(
        "jhmdb-evaluate-joints-short-frame",
        JE,
        *J,
        "--results",
        "{res}",
        setup=_jhmdb_results_changed(_joints(json.dumps({"joints": [[[1.0, 2.0]] * 14]}))),
        out=None,
    ),
    case(
        "jhmdb-evaluate-joints-infinite",
        JE,
        *J,
        "--results",
        "{res}",
        setup=_jhmdb_results_changed(_joints('{"joints": [[[1e999, 2.0]]]}')),
        out=None,
    ),
    case("jhmdb-evaluate-thresholds-text", JE, *J, "--results", "{d.jhmdb_results}", "--thresholds", "a", out=None),
    case("jhmdb-evaluate-thresholds-zero", JE, *J, "--results", "{d.jhmdb_results}", "--thresholds", "0", out=None),
    case(
        "jhmdb-evaluate-output-in-frames",
        JE,
        "--jhmdb-root",
        "{jhmdb}",
        "--results",
        "{d.jhmdb_results}",
        "--output",
        "{frames}",
        setup=jhmdb_copy,
        out=None,
    ),
    case(
        "jhmdb-evaluate-output-in-result-video",
        JE,
        *J,
        "--results",
        "{res}",
        "--output",
        "{res}/{video}",
        setup=jhmdb_results_copy,
        out=None,
    ),
    case(
        "jhmdb-evaluate-no-overwrite-existing",
        JE,
        *J,
        "--results",
        "{res}",
        "--no-overwrite",
        setup=_jhmdb_results_changed(lambda res, video: (res / "pck_results-split1.csv").write_text("x")),
        out=None,
    ),
]

CASES_VIP = [
    case("vip-root-missing", VP, "--vip-root", "{box}/nope", "--out", "{out}"),
    case("vip-root-empty", VP, "--vip-root", "{box}", "--out", "{out}"),
    case("vip-list-missing", VP, *V, "--out", "{out}", "--list", "{box}/none.txt"),
    case(
        "vip-list-escapes-out",
        VP,
        "--vip-root",
        "{vip}",
        "--out",
        "{out}",
        setup=_vip_changed(lambda e: e["list"].write_text("../videos1\n")),
        contains=("../videos1",),
    ),
    case(
        "vip-list-non-utf8",
        VP,
        "--vip-root",
        "{vip}",
        "--out",
        "{out}",
        setup=_vip_changed(lambda e: e["list"].write_bytes(b"videos\xff\n")),
    ),
    case(
        "vip-video-without-annotations",
        VP,
        "--vip-root",
        "{vip}",
        "--out",
        "{out}",
        setup=_vip_changed(lambda e: shutil.rmtree(e["first"].parent)),
    ),
    case(
        "vip-first-parts-out-of-range",
        VP,
        "--vip-root",
        "{vip}",
        "--out",
        "{out}",
        setup=_vip_changed(_first_parts(np.full((64, 96), 30))),
    ),
    case(
        "vip-first-parts-empty",
        VP,
        "--vip-root",
        "{vip}",
        "--out",
        "{out}",
        setup=_vip_changed(_first_parts(np.zeros((64, 96)))),
    ),
    case(
        "vip-first-parts-wrong-size",
        VP,
        "--vip-root",
        "{vip}",
        "--out",
        "{out}",
        setup=_vip_changed(_first_parts(np.ones((20, 30)))),
    ),
    case(
        "vip-first-parts-garbage",
        VP,
        "--vip-root",
        "{vip}",
        "--out",
        "{out}",
        setup=_vip_changed(lambda e: e["first"].write_bytes(b"\x89PNG garbage")),
    ),
    case("vip-videos-unknown", VP, *V, "--out", "{out}", "--videos", "videos9"),
    case("vip-overlay-bogus", VP, *V, "--out", "{out}", "--overlay", "gif"),
    case("vip-context-negative", VP, *V, "--out", "{out}", "--context", "-2"),
    case("vip-out-is-root", VP, "--vip-root", "{vip}", "--out", "{vip}", "--overwrite", setup=vip_copy, out="{vip}"),
    case(
        "vip-out-is-annotations",
        VP,
        "--vip-root",
        "{vip}",
        "--out",
        "{vip}/Category_ids",
        "--overwrite",
        setup=vip_copy,
        out="{vip}/Category_ids",
    ),
    case("vip-out-is-file", VP, *V, "--out", "{out}", "--overwrite", setup=regular_file),
    case("vip-out-foreign-files", VP, *V, "--out", "{out}", setup=foreign_files),
    case("vip-evaluate-results-missing", VE, *V, "--results", "{box}/nope", out=None),
    case(
        "vip-evaluate-prediction-missing",
        VE,
        *V,
        "--results",
        "{res}",
        setup=_vip_results_changed(lambda mask: mask.unlink()),
        out=None,
    ),
    case(
        "vip-evaluate-prediction-id-too-high",
        VE,
        *V,
        "--results",
        "{res}",
        setup=_vip_results_changed(lambda mask: hostile.write_labels(mask, np.full((64, 96), 40), mode="P")),
        out=None,
    ),
    case(
        "vip-evaluate-prediction-garbage",
        VE,
        *V,
        "--results",
        "{res}",
        setup=_vip_results_changed(lambda mask: mask.write_bytes(b"\x89PNG garbage")),
        out=None,
    ),
    case(
        "vip-evaluate-prediction-huge",
        VE,
        *V,
        "--results",
        "{res}",
        setup=_vip_results_changed(lambda mask: mask.write_bytes(hostile.png_declaring(13000, 13000))),
        out=None,
    ),
    case(
        "vip-evaluate-output-in-annotations",
        VE,
        "--vip-root",
        "{vip}",
        "--results",
        "{d.vip_results}",
        "--output",
        "{vip}/Category_ids/videos1",
        setup=vip_copy,
        out=None,
    ),
    case(
        "vip-evaluate-no-overwrite-existing",
        VE,
        *V,
        "--results",
        "{res}",
        "--no-overwrite",
        setup=lambda b, d: {
            **vip_results_copy(b, d),
            **({} if (b / "res" / "parts_results-val_videos.csv").write_text("x") else {}),
        },
        out=None,
    ),
]

SJ, SV = "synth jhmdb", "synth vip"
CASES_SYNTH = [
    case("synth-jhmdb-videos-zero", SJ, "{out}", "--videos", "0"),
    case("synth-jhmdb-frames-one", SJ, "{out}", "--frames", "1"),
    case("synth-jhmdb-height-tiny", SJ, "{out}", "--height", "8"),
    case("synth-jhmdb-out-is-file", SJ, "{out}", setup=regular_file),
    case("synth-jhmdb-overwrite-foreign-folder", SJ, "{out}", "--overwrite", setup=foreign_folder),
    case("synth-vip-videos-zero", SV, "{out}", "--videos", "0"),
    case("synth-vip-annotate-every-zero", SV, "{out}", "--annotate-every", "0"),
    case("synth-vip-out-under-file", SV, "{box}/file.txt/v", setup=file_in_the_way),
    case("synth-vip-out-not-empty", SV, "{out}", setup=foreign_folder),
]

CASES = [*CASES_JHMDB, *CASES_VIP, *CASES_SYNTH]
