"""Dense retrieval on a synthetic VOC set (trainaug layout) with the embedded MobileNetV2: the library against a
plain reference on the same network, and `retrieval eval-dense` through the CLI (outputs, reuse, refusals)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dense_retrieval.backbone.config import BackboneConfig, FeatureConfig
from dense_retrieval.backbone.features import FeatureExtractor
from dense_retrieval.data.masks import read_label_png
from dense_retrieval.data.segmentation_sets import open_split
from dense_retrieval.data.synth import make_synthetic_voc
from dense_retrieval.protocols import HUMMINGBIRD
from dense_retrieval.retrieval.dense.evaluate import evaluate_dense
from dense_retrieval.retrieval.dense.patches import patch_classes
from dense_retrieval.retrieval.dense.transforms import derived_seed, memory_input, validation_input
from dense_retrieval.retrieval.index.stages import IndexOptions
from tests.test_dense_patches import _reference_sample

SIZE = 128  # input side: an 8 x 8 grid at stride 16
pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("dense-voc") / "voc"
    make_synthetic_voc(root, num_train=8, num_val=3, size=96, seed=4, trainaug=True)
    return root


@pytest.fixture(scope="module")
def extractor():
    config = FeatureConfig(resize="native", preprocess="hummingbird", device="cpu")
    return FeatureExtractor.build(BackboneConfig("mobilenet_v2"), config)


def _reference(train, val, extractor, protocol) -> list[np.ndarray]:
    """The protocol written out plainly over the same network (tests/test_dense_fidelity.py's reference)."""
    keys, values = [], []
    cells = (SIZE // 16) ** 2
    per_image = protocol.per_image(len(train), cells)
    for image in range(len(train)):
        rgb, labels = train.read(image)
        recipe = extractor.preprocessing
        for epoch in range(protocol.passes):
            seed = derived_seed(protocol.seed, epoch, image, 0)
            sample = memory_input(rgb, labels, SIZE, protocol.transforms, seed, recipe)
            features = extractor.extract([sample.image]).features[0].reshape(extractor.channels, -1).T
            mapped = torch.from_numpy(sample.labels.astype(np.int64))
            mapped[mapped == 255] = 0
            generator = torch.Generator().manual_seed(derived_seed(protocol.seed, epoch, image, 1))
            noise = torch.rand(cells, generator=generator)
            for cell in _reference_sample(mapped, 16, 21, per_image, noise.tolist()):
                keys.append(features[cell] / features[cell].norm())
                values.append(torch.bincount(patch_classes(mapped, 16)[cell], minlength=21).float() / 256)
    keys, values = torch.stack(keys), torch.stack(values)
    predictions = []
    for index in range(len(val)):
        sample = validation_input(*val.read(index), SIZE, extractor.preprocessing)
        q = extractor.extract([sample.image]).features[0].reshape(extractor.channels, -1).T
        top = (F.normalize(q, dim=1) @ keys.T).topk(protocol.neighbours, dim=1)
        weights = torch.softmax(top.values / protocol.temperature, dim=1)
        grid = (weights.unsqueeze(2) * values[top.indices]).sum(1).T.reshape(1, 21, SIZE // 16, SIZE // 16)
        predictions.append(F.interpolate(grid, size=(SIZE, SIZE), mode="bilinear")[0].argmax(0).numpy())
    return predictions


def test_library_equals_the_plain_reference_on_a_real_network(voc, extractor, tmp_path):
    train, val = open_split("voc", voc, "trainaug"), open_split("voc", voc, "val")
    protocol = HUMMINGBIRD.dense.replace(memory_size=8 * 2 * 40, input_size=SIZE)
    report = evaluate_dense(train, val, extractor, protocol, tmp_path / "memory", predictions=tmp_path / "pred")
    assert report["memory"]["patches"] == 8 * 2 * 40 and report["memory"]["per_image"] == 40
    for index, expected in enumerate(_reference(train, val, extractor, protocol)):
        found = read_label_png(tmp_path / "pred" / f"{val.ids[index]}.png")
        assert np.array_equal(found, expected), f"prediction {val.ids[index]} differs"
    assert 0.0 < report["miou"] <= 1.0 and report["miou_present"] >= report["miou"]


def test_inverted_file_memory_keeps_the_exact_miou_on_a_real_network(voc, extractor, tmp_path):
    train, val = open_split("voc", voc, "trainaug"), open_split("voc", voc, "val")
    protocol = HUMMINGBIRD.dense.replace(memory_size=8 * 2 * 48, input_size=SIZE)
    exact = evaluate_dense(train, val, extractor, protocol, tmp_path / "exact")
    approximate = evaluate_dense(
        train, val, extractor, protocol, tmp_path / "ivf", IndexOptions(factory="IVF16,SQ8", recall_queries=100)
    )
    recall = approximate["memory"]["recall"]
    assert approximate["memory"]["factory"] == "IVF16,SQ8" and recall["k"] == 30 and recall["queries"] == 76
    assert recall["recall_at_30"] < 1.0  # the memory is approximate ...
    assert abs(approximate["miou"] - exact["miou"]) <= 0.005, (
        exact["miou"],
        approximate["miou"],
        recall,
    )  # ... the score not


@pytest.fixture()
def run(run_cli, voc, tmp_path):
    base = ["retrieval", "eval-dense", "--root", voc, "--input-size", SIZE, "--memory-size", 320, "--device", "cpu"]

    def _run(*extra):
        return run_cli(*base, *extra)

    return _run


def test_command_reports_keeps_and_reuses_its_memory(run, tmp_path):
    out = tmp_path / "out"
    first = run("--out", out, "--json", "--save-predictions")
    assert first.exit_code == 0, first
    report = first.json()
    assert json.loads((out / "report.json").read_text())["miou"] == report["miou"]
    assert not report["memory"]["reused"] and (out / "memory" / "memory.json").is_file()
    assert sorted(p.name for p in (out / "predictions").iterdir()) == [f"synth_{i:06d}.png" for i in range(8, 11)]
    assert sorted(p.name for p in out.iterdir()) == ["memory", "predictions", "report.json"]
    again = run("--out", out, "--json", "--neighbours", 10)  # another k: the memory is read again, not rebuilt
    assert again.exit_code == 0, again
    assert again.json()["memory"]["reused"] and again.json()["protocol"]["neighbours"] == 10
    other = run("--out", out, "--json", "--seed", 1)  # another memory: refused, naming what differs
    assert other.exit_code == 2 and "dense.seed" in other.stderr and other.stdout == "", other
    text = run("--out", tmp_path / "reader", "--memory", out / "memory", "--temperature", 0.1)
    assert text.exit_code == 0, text
    assert "mIoU" in text.stdout and "(reused)" in text.stdout


def test_command_refuses_foreign_outputs_and_mismatched_memories(run, voc, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused = run("--out", foreign)
    assert refused.exit_code == 2 and "not an eval-dense output" in refused.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    inside = run("--out", voc / "runs")
    assert inside.exit_code == 2 and "inside an input" in inside.stderr and not (voc / "runs").exists()
    built = run("--out", tmp_path / "a", "--json")
    assert built.exit_code == 0, built
    other = run("--out", tmp_path / "b", "--memory", tmp_path / "a" / "memory", "--weights", "random")
    assert other.exit_code == 2 and "backbone.weights" in other.stderr, other
    assert not (tmp_path / "b").exists()


def test_hummingbird_layout_reads_the_same_images(voc, tmp_path):
    base = tmp_path / "VOCSegmentation"
    shutil.copytree(voc / "JPEGImages", base / "images")
    shutil.copytree(voc / "SegmentationClassAug", base / "SegmentationClassAug")
    shutil.copytree(voc / "SegmentationClass", base / "SegmentationClass")
    shutil.copytree(voc / "ImageSets" / "Segmentation", base / "sets")
    theirs, ours = open_split("voc", tmp_path, "trainaug"), open_split("voc", voc, "trainaug")
    assert theirs.ids == ours.ids and theirs.labels[0].parent.name == "SegmentationClassAug"
    assert np.array_equal(theirs.read(0)[1], ours.read(0)[1])


@pytest.mark.slow
def test_bench_run_gives_the_numbers_of_eval_dense(run_cli, run, voc, tmp_path):
    """The dense registration of `bench run`: each cell's headline is `retrieval eval-dense`'s mIoU."""
    spec = tmp_path / "bench.toml"
    spec.write_text(
        '[run]\ndevice = "cpu"\n\n[[backbone]]\nweights = "default"\n\n[[backbone]]\narch = "mobilenet_v2"\n'
        f'weights = "random:0"\n\n[benchmark.dense]\nroot = "{voc}"\ninput_size = {SIZE}\nmemory_size = 320\n',
        encoding="utf-8",
    )
    bench = run_cli("bench", "run", spec, "--out", tmp_path / "bench", "--json")
    assert bench.exit_code == 0, bench
    for weights, row in (("default", "mobilenet_v2"), ("random:0", "mobilenet_v2-random0")):
        direct = run("--out", tmp_path / f"direct-{row}", "--weights", weights, "--json")
        assert direct.exit_code == 0, direct
        cell = json.loads((tmp_path / "bench" / "cells" / "dense" / row / "cell.json").read_text())
        assert cell["headline"]["value"] == direct.json()["miou"], row
        assert cell["metrics"]["mIoU (no matching)"] == direct.json()["miou_no_matching"]
