"""`jhmdb evaluate` and `vip evaluate` on hand-made predictions (no network): PCK of a known shift, part
mIoU against a plain CRW-style confusion histogram, the files they write, what they refuse."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from dense_retrieval.data.jhmdb import JhmdbDataset
from dense_retrieval.data.keypoint_results import write_joints_file
from dense_retrieval.data.masks import write_label_png
from dense_retrieval.data.synth import make_synthetic_jhmdb, make_synthetic_vip
from dense_retrieval.data.vip import VipDataset
from dense_retrieval.errors import DataFormatError, InputError
from dense_retrieval.metrics.conventions import PartConventions
from dense_retrieval.vos.jhmdb_eval import run_jhmdb_evaluation
from dense_retrieval.vos.vip_eval import run_vip_evaluation


@pytest.fixture(scope="module")
def jhmdb(tmp_path_factory):
    root = tmp_path_factory.mktemp("jhmdb") / "JHMDB"
    make_synthetic_jhmdb(root, num_videos=2, num_frames=6, size=(64, 80), train_videos=0)
    return JhmdbDataset(root)


@pytest.fixture(scope="module")
def vip(tmp_path_factory):
    root = tmp_path_factory.mktemp("vip") / "VIP_Fine"
    make_synthetic_vip(root, num_videos=2, num_frames=4, size=(48, 64), annotate_every=1)
    return VipDataset(root)


def normaliser(truth: np.ndarray) -> np.ndarray:
    """0.6 x the diagonal of each frame's joint box: float [T]."""
    return 0.6 * np.linalg.norm(truth.max(axis=1) - truth.min(axis=1), axis=1)


def write_predictions(dataset: JhmdbDataset, results, shift_in_normalisers: float, frames: int | None = None):
    for name in dataset.videos:
        truth = dataset.joints(name)
        predicted = truth + np.stack([shift_in_normalisers * normaliser(truth), np.zeros(len(truth))], 1)[:, None]
        path = results / name / "joints.json"
        write_joints_file(path, name, dataset.action(name), (64, 80), (8, 10), predicted[:frames])


def test_a_known_shift_gives_a_known_pck_and_the_files_say_so(jhmdb, tmp_path):
    results = tmp_path / "res"
    write_predictions(jhmdb, results, 0.15)
    evaluation, paths = run_jhmdb_evaluation(jhmdb, results)
    headline = evaluation.headline()
    assert headline["PCK@0.1"] == 0.0 and headline["PCK@0.2"] == 1.0 and headline["PCK@0.5"] == 1.0
    rows = list(csv.reader(paths["csv"].open()))
    assert rows[0] == ["joint", "PCK@0.1", "PCK@0.2", "PCK@0.3", "PCK@0.4", "PCK@0.5", "scored"]
    assert rows[-1][:3] == ["mean", "0.0000", "1.0000"] and rows[-1][-1] == str(2 * 5 * 15)  # frame 0 skipped
    report = json.loads(paths["report"].read_text())
    assert report["pck"]["PCK@0.2"] == 1.0 and report["num_videos"] == 2 and report["conventions"]["box_scale"] == 0.6


def test_predictions_shorter_than_the_truth_are_scored_on_the_common_frames(jhmdb, tmp_path):
    results = tmp_path / "res"
    write_predictions(jhmdb, results, 0.05, frames=3)
    evaluation, _ = run_jhmdb_evaluation(jhmdb, results, tmp_path / "scores")
    assert evaluation.headline()["PCK@0.1"] == 1.0
    assert [v["frames_scored"] for v in evaluation.videos] == [2, 2]
    assert {v["frames_truth"] for v in evaluation.videos} == {6}


def test_jhmdb_evaluation_refuses_missing_predictions_and_outputs_over_its_inputs(jhmdb, tmp_path):
    results = tmp_path / "res"
    write_predictions(jhmdb, results, 0.0)
    (results / jhmdb.videos[1] / "joints.json").unlink()
    with pytest.raises(DataFormatError, match="no predictions file"):
        run_jhmdb_evaluation(jhmdb, results)
    with pytest.raises(InputError):
        run_jhmdb_evaluation(jhmdb, results, jhmdb.root / "Rename_Images")
    assert not list(results.glob("pck_*"))


def crw_style_miou(pairs) -> float:
    """CRW's eval_vip.py in plain numpy: one 20 x 20 histogram (ground truth outside 0..19 dropped),
    predictions of another size resized to the annotation with PIL nearest, nanmean of the IoUs."""
    hist = np.zeros((20, 20))
    for predicted, truth in pairs:
        if predicted.shape != truth.shape:
            predicted = np.asarray(Image.fromarray(predicted).resize(truth.shape[::-1], Image.NEAREST))
        keep = (truth >= 0) & (truth < 20)
        hist += np.bincount(20 * truth[keep].astype(int) + predicted[keep], minlength=400).reshape(20, 20)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    return float(np.nanmean(iou))


def test_part_miou_matches_a_crw_style_histogram(vip, tmp_path):
    rng = np.random.default_rng(0)
    results, pairs = tmp_path / "res", []
    for name in vip.videos:
        video = vip.video(name)
        for number, stem in enumerate(video.annotated):
            truth = vip.read_parts(video.annotations[stem])
            predicted = truth.copy()
            wrong = rng.random(truth.shape) < 0.2  # some pixels get another part of the figure
            predicted[wrong] = rng.choice(np.unique(truth), size=int(wrong.sum()))
            truth_scored = truth.copy()
            if number == 1:
                truth_scored[:5] = 255  # void rows are left out
                Image.fromarray(truth_scored).save(video.annotations[stem])
            if number == 2:  # a prediction at another size: resized to the annotation, nearest
                predicted = np.asarray(Image.fromarray(predicted).resize((96, 72), Image.NEAREST))
            write_label_png(results / name / f"{stem}.png", predicted)
            pairs.append((predicted, truth_scored))
    evaluation, paths = run_vip_evaluation(vip, results)
    assert evaluation.miou == pytest.approx(crw_style_miou(pairs), abs=1e-12)
    assert evaluation.resized == len(vip.videos)
    report = json.loads(paths["report"].read_text())
    assert report["miou"] == pytest.approx(evaluation.miou) and report["per_class"][5]["IoU"] is None  # no dress
    rows = list(csv.reader(paths["csv"].open()))
    assert rows[0] == ["class", "IoU", "pixels"] and rows[1][0] == "background" and rows[-1][0] == "mean"
    skipped, _ = run_vip_evaluation(vip, results, tmp_path / "s", PartConventions(skip_first=True))
    assert sum(v["frames_scored"] for v in skipped.videos) == sum(v["frames_scored"] for v in evaluation.videos) - 2


def test_vip_evaluation_refuses_a_missing_or_out_of_range_prediction(vip, tmp_path):
    results = tmp_path / "res"
    for name in vip.videos:
        for stem in vip.video(name).annotated:
            write_label_png(results / name / f"{stem}.png", np.zeros((48, 64), np.uint8))
    victim = results / vip.videos[0] / f"{vip.video(vip.videos[0]).annotated[-1]}.png"
    write_label_png(victim, np.full((48, 64), 21, np.uint8))
    with pytest.raises(DataFormatError, match="part id 21"):
        run_vip_evaluation(vip, results)
    victim.unlink()
    with pytest.raises(DataFormatError, match="no prediction"):
        run_vip_evaluation(vip, results)
    assert not list(results.glob("parts_*"))


def test_both_evaluations_run_without_torch(jhmdb, vip, tmp_path):
    """Scoring needs no network: `jhmdb evaluate` and `vip evaluate` never import torch (house rule 11)."""
    import subprocess
    import sys

    joints, parts = tmp_path / "joints", tmp_path / "parts"
    write_predictions(jhmdb, joints, 0.0)
    for name in vip.videos:
        for stem in vip.video(name).annotated:
            write_label_png(parts / name / f"{stem}.png", np.zeros((48, 64), np.uint8))
    for args in (
        ["jhmdb", "evaluate", "--jhmdb-root", str(jhmdb.root), "--results", str(joints), "--json"],
        ["vip", "evaluate", "--vip-root", str(vip.root), "--results", str(parts), "--json"],
    ):
        code = (
            "import sys\nfrom dense_retrieval.cli import app\n"
            f"try:\n    app({args!r})\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
            "print('torch loaded:', 'torch' in sys.modules, file=sys.stderr)\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert "torch loaded: False" in done.stderr, done.stderr
        assert json.loads(done.stdout)["benchmark"] == args[0]
