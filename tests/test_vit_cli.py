"""A vision transformer with random weights through every command, on synthetic data (real files, real FAISS)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dense_retrieval.data.davis import DavisDataset
from dense_retrieval.data.feature_store import read_feature_store
from dense_retrieval.data.images import read_image
from dense_retrieval.data.masks import read_label_png
from dense_retrieval.data.synth import make_synthetic_davis, make_synthetic_voc
from dense_retrieval.data.video import write_frames

VIT = ["--backbone", "vit_small_patch16", "--weights", "random:1", "--device", "cpu"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def davis(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "davis"
    # widths that are not multiples of 16 (like DAVIS's 854 and 910)
    make_synthetic_davis(root, num_sequences=2, num_frames=5, size=(96, 182), widths=(182, 230), seed=4)
    return root


def test_davis_propagate_and_evaluate_with_a_vit(davis, tmp_path, run_cli):
    """DINO's protocol by default for a ViT; --resize short:96/32 keeps the frames small (DINO's own rule is
    short:480/64); masks come back at annotation size and score with the official protocol."""
    out = tmp_path / "results"
    r = run_cli("davis", "propagate", "--davis-root", davis, "--out", out, *VIT, "--resize", "short:96/32", "--json")
    assert r.exit_code == 0, r
    record = json.loads((out / "propagation.json").read_text())["run"]
    assert record["propagation"]["topk"] == 5 and record["propagation"]["context"] == 7  # the dino preset
    assert record["backbone"]["name"] == "vit_small_patch16" and record["backbone"]["layer"] == "blocks.11"
    assert record["backbone"]["stride"] == 16 and record["features"]["resize"] == "short:96/32"
    dataset = DavisDataset(davis)
    for name in dataset.sequences:
        sequence = dataset.sequence(name)
        for frame, annotation in zip(sequence.frames, sequence.annotations, strict=True):
            mask = read_label_png(out / name / annotation.name)
            assert mask.shape == read_image(frame).shape[:2]  # 96x182 and 96x230: not multiples of 16
            assert set(np.unique(mask)) <= set(range(dataset.num_objects(name) + 1))
    scores = run_cli("davis", "evaluate", "--davis-root", davis, "--results", out, "--output",
                     tmp_path / "scores", "--processes", "1", "--json")  # fmt: skip
    assert scores.exit_code == 0, scores
    assert 0.0 <= scores.json()["global"]["J&F-Mean"] <= 1.0
    crw = run_cli("davis", "propagate", "--davis-root", davis, "--out", tmp_path / "crw", *VIT, "--preset", "crw",
                  "--resize", "native", "--sequences", dataset.sequences[0], "--json")  # fmt: skip
    assert crw.exit_code == 0, crw
    assert json.loads((tmp_path / "crw" / "propagation.json").read_text())["run"]["propagation"]["topk"] == 10


def test_video_propagate_with_a_vit(davis, tmp_path, run_cli):
    dataset = DavisDataset(davis)
    name = dataset.sequences[0]
    frames = tmp_path / "frames"
    write_frames(frames, [read_image(path) for path in dataset.sequence(name).frames])
    mask = dataset.sequence(name).annotations[0]
    out = tmp_path / "out"
    r = run_cli("video", "propagate", frames, "--mask", mask, "--out", out, *VIT, "--resize", "native", "--json")
    assert r.exit_code == 0, r
    assert read_label_png(out / "00004.png").shape == read_image(dataset.sequence(name).frames[0]).shape[:2]


def test_index_query_and_eval_voc_with_a_vit(tmp_path, run_cli):
    voc = tmp_path / "VOC2012"
    make_synthetic_voc(voc, num_train=6, num_val=3, size=(90, 120), seed=2)
    images = sorted((voc / "JPEGImages").glob("*.jpg"))
    index = tmp_path / "index"
    built = run_cli("index", "build", *images[:4], "--proposals", "kmeans", "--clusters", "3", "--out", index,
                    *VIT, "--json")  # fmt: skip
    assert built.exit_code == 0, built
    added = run_cli(
        "index", "add", index, *images[4:6], "--proposals", "kmeans", "--clusters", "3", "--device", "cpu", "--json"
    )  # fmt: skip (the backbone recorded in the index)
    assert added.exit_code == 0, added
    query = run_cli("query", index, images[6], "--proposals", "kmeans", "--clusters", "2", "-k", "2",
                    "--device", "cpu", "--json")  # fmt: skip
    assert query.exit_code == 0, query
    assert all(len(q["hits"]) == 2 for q in query.json()["queries"])
    feats = run_cli("features", *images[:2], "--out", tmp_path / "f.npz", *VIT, "--json")
    assert feats.exit_code == 0 and feats.json()["stride"] == 16 and feats.json()["channels"] == 384, feats
    assert read_feature_store(tmp_path / "f.npz")[0].shape == (384, 90 // 16, 120 // 16)  # 80x112 input
    report = run_cli("retrieval", "eval-voc", "--voc-root", voc, "--size", "64", "--max-images", "3", *VIT, "--json")
    assert report.exit_code == 0, report
    assert 0.0 <= report.json()["classes_21"]["miou_present"] <= 1.0
