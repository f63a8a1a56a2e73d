"""Synthetic generators: they round-trip through the readers and their ground truth is what they claim."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

from dense_retrieval.data.davis import DavisDataset
from dense_retrieval.data.masks import read_label_png
from dense_retrieval.data.synth import datasets as synth_module
from dense_retrieval.data.synth import make_synthetic_davis, make_synthetic_voc
from dense_retrieval.data.synth.assets import SYNTH_CLASSES, shape_mask
from dense_retrieval.data.synth.scenes import boundary_band, plan_sequence
from dense_retrieval.data.video import open_video
from dense_retrieval.data.voc import VOC7_CLASS_IDS, VocDataset
from dense_retrieval.errors import InputError, OutputExistsError


@pytest.fixture(scope="module")
def davis17(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "davis17"
    manifest = make_synthetic_davis(root, num_sequences=3, num_frames=12, size=(96, 160), seed=3)
    return root, manifest


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "voc"
    manifest = make_synthetic_voc(root, num_train=10, num_val=6, size=128, seed=5)
    return root, manifest


def _tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_davis2017_round_trip(davis17):
    root, manifest = davis17
    dataset = DavisDataset(root, year="2017", split="val")
    assert dataset.sequences == [s["name"] for s in manifest["sequences"]]
    assert json.loads((root / "synth.json").read_text()) == manifest
    counts = []
    for record in manifest["sequences"]:
        sequence = dataset.sequence(record["name"])
        assert len(sequence.frames) == len(sequence.annotations) == 12
        assert sequence.frame_names[0] == "00000"
        n = len(record["objects"])
        counts.append(n)
        assert [o["id"] for o in record["objects"]] == list(range(1, n + 1))
        assert dataset.num_objects(record["name"]) == n  # DAVIS counts objects from frame 0
        frame_ids = []
        for frame_path, label_path in zip(sequence.frames, sequence.annotations, strict=True):
            labels = dataset.read_annotation(label_path)
            assert labels.shape == (96, 160) == dataset.read_frame(record["name"], 0).shape[:2]
            assert open_video(frame_path.parent).info.size == (96, 160)
            frame_ids.append(set(np.unique(labels).tolist()) - {0})
        assert frame_ids[0] == set(range(1, n + 1))  # every object visible in frame 0
        assert set().union(*frame_ids) == set(range(1, n + 1))  # ids never change or appear later
    assert sorted(counts) == [1, 2, 3]


def test_davis_occlusion_happens_and_frame0_is_clear():
    """Render each object alone and compare with the composed label map: some frame hides part of one."""
    rng = np.random.default_rng(7)
    size, frames = (120, 200), 16
    tracks, stats = plan_sequence(rng, size, frames, 3)
    assert stats["occluded_frames"]
    hidden_somewhere = False
    for t in range(frames):
        composed = np.zeros(size, np.uint8)
        alone_areas = []
        for object_id, track in enumerate(tracks, start=1):
            top, left, h, w = track.box(t)
            assert top >= 0 and top + h <= size[0] and left >= 0 and left + w <= size[1]
            mask = shape_mask(track.spec.name, (h, w))
            composed[top : top + h, left : left + w][mask] = object_id
            alone_areas.append(mask.sum())
        visible = np.bincount(composed.ravel(), minlength=4)[1:]
        fractions = visible / np.array(alone_areas)
        assert fractions.min() >= 0.2  # never fully hidden
        if t == 0:
            assert fractions.min() >= 0.6
        hidden_somewhere |= bool(fractions.min() < 0.97)
        assert (t in stats["occluded_frames"]) == bool(fractions.min() < 0.97)
    assert hidden_somewhere


def test_davis_objects_move_and_change_scale(davis17):
    root, manifest = davis17
    dataset = DavisDataset(root)
    record = next(s for s in manifest["sequences"] if len(s["objects"]) == 1)
    sequence = dataset.sequence(record["name"])
    first, last = (dataset.read_annotation(p) for p in (sequence.annotations[0], sequence.annotations[-1]))
    centre = [np.argwhere(labels == 1).mean(0) for labels in (first, last)]
    assert np.linalg.norm(centre[1] - centre[0]) > 10  # it moved
    assert (first == 1).sum() != (last == 1).sum()  # and changed size
    frames = [dataset.read_frame(record["name"], i) for i in (0, 1)]
    step = np.abs(frames[1].astype(int) - frames[0].astype(int)).mean()
    assert 0 < step < 60  # smooth: consecutive frames alike, not identical


def test_davis2016_binary_round_trip(tmp_path):
    root = tmp_path / "davis16"
    manifest = make_synthetic_davis(root, num_sequences=2, num_frames=4, size=(64, 96), year="2016")
    assert all(len(s["objects"]) == 1 for s in manifest["sequences"])
    dataset = DavisDataset(root, year="2016", split="val")
    assert len(dataset.sequences) == 2
    for name in dataset.sequences:
        path = dataset.sequence(name).annotations[2]
        assert set(np.unique(read_label_png(path)).tolist()) == {0, 255}  # 0/255 on disk
        assert set(np.unique(dataset.read_annotation(path)).tolist()) == {0, 1}
        assert dataset.num_objects(name) == 1
    with pytest.raises(InputError, match="objects per sequence must be between 1 and 1"):
        make_synthetic_davis(tmp_path / "x", year="2016", objects_per_sequence=[2])


def test_davis_widths_and_train_split(tmp_path):
    root = tmp_path / "wide"
    manifest = make_synthetic_davis(
        root, num_sequences=2, num_frames=3, size=(60, 107), widths=[107, 114, 144], train_sequences=1
    )
    assert [s["size"] for s in manifest["sequences"]] == [[60, 107], [60, 114], [60, 144]]
    val, train = DavisDataset(root, split="val"), DavisDataset(root, split="train")
    assert len(val.sequences) == 2 and len(train.sequences) == 1
    assert train.read_frame(train.sequences[0], 0).shape == (60, 144, 3)


def test_davis_is_deterministic(tmp_path):
    kwargs = {"num_sequences": 2, "num_frames": 3, "size": (48, 80)}
    make_synthetic_davis(tmp_path / "a", seed=1, **kwargs)
    make_synthetic_davis(tmp_path / "b", seed=1, **kwargs)
    make_synthetic_davis(tmp_path / "c", seed=2, **kwargs)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")


def test_voc_round_trip(voc):
    root, manifest = voc
    train, val = VocDataset(root, "train"), VocDataset(root, "val")
    assert len(train) == 10 and len(val) == 6 and not set(train.ids) & set(val.ids)
    records = {r["id"]: r for r in manifest["images"]}
    seen_classes = set()
    for dataset in (train, val):
        for image_id in dataset.ids:
            record = records[image_id]
            assert record["split"] == dataset.split
            image = dataset.read_image(image_id)
            classes, objects = dataset.read_class_labels(image_id), dataset.read_object_labels(image_id)
            assert image.shape == (128, 128, 3) and classes.shape == objects.shape == (128, 128)
            assert 1 <= len(record["objects"]) <= 3
            assert set(np.unique(objects).tolist()) - {0, 255} == {o["id"] for o in record["objects"]}
            for obj in record["objects"]:
                assert set(np.unique(classes[objects == obj["id"]]).tolist()) == {obj["voc_id"]}
                seen_classes.add(obj["voc_id"])
            np.testing.assert_array_equal(classes == 255, objects == 255)
            assert ((classes == 0) == (objects == 0)).all()
    assert len(seen_classes & set(VOC7_CLASS_IDS)) >= 4
    assert seen_classes <= {spec.voc_id for spec in SYNTH_CLASSES}


def test_boundary_band_is_a_ring_around_label_changes():
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 5:15] = 3
    band = boundary_band(labels, 1)
    expected = np.zeros((20, 20), bool)
    expected[4:16, 4:16] = True
    expected[6:14, 6:14] = False  # one pixel either side of the edge
    expected[[4, 4, 15, 15], [4, 15, 4, 15]] = False  # outer corners are sqrt(2) away: outside radius 1
    np.testing.assert_array_equal(band, expected)
    assert not boundary_band(labels, 0).any()


def test_voc_void_band_lies_on_object_boundaries(voc):
    root, manifest = voc
    dataset = VocDataset(root, "train")
    reach = 2 * manifest["params"]["void_radius"] + 1
    for image_id in dataset.ids:
        classes = dataset.read_class_labels(image_id)
        objects = dataset.read_object_labels(image_id)
        void = classes == 255
        assert 0 < void.mean() < 0.2  # a thin band, as in VOC
        for obj in manifest["images"][int(image_id.split("_")[1])]["objects"]:
            assert (objects == obj["id"]).sum() > 50  # every object keeps labelled pixels
        # each void pixel is close to labelled pixels on both sides of a boundary
        for y, x in np.argwhere(void)[::17]:
            window = classes[max(y - reach, 0) : y + reach + 1, max(x - reach, 0) : x + reach + 1]
            assert len(set(np.unique(window).tolist()) - {255}) >= 1
        # no void away from objects: background far from every object is never void
        near_objects = cv2.dilate((classes != 0).astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8))
        assert not (void & (near_objects == 0)).any()


def test_voc_is_deterministic(tmp_path):
    make_synthetic_voc(tmp_path / "a", num_train=3, num_val=2, size=64, seed=4)
    make_synthetic_voc(tmp_path / "b", num_train=3, num_val=2, size=64, seed=4)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")


def test_refuses_non_empty_output_and_overwrites_when_asked(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not empty"):
        make_synthetic_voc(out, num_train=1, num_val=1, size=64)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(OutputExistsError, match="not a synthetic dataset"):  # --overwrite replaces only its own
        make_synthetic_voc(out, num_train=1, num_val=1, size=64, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    make_synthetic_voc(out, num_train=1, num_val=1, size=64)
    make_synthetic_voc(out, num_train=2, num_val=1, size=64, overwrite=True)
    assert (out / "synth.json").is_file() and "synth_000002" in (out / "synth.json").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    make_synthetic_davis(empty, num_sequences=1, num_frames=2, size=(48, 64))
    assert DavisDataset(empty).sequences


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    original = synth_module.write_voc_sample
    monkeypatch.setattr(synth_module, "write_voc_sample", failing_write)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_voc(tmp_path / "voc", num_train=3, num_val=2, size=64)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"year": "2015"}, "unknown DAVIS year"),
        ({"num_frames": 0}, "num_frames must be between"),
        ({"size": (10, 100)}, "height must be between"),
        ({"objects_per_sequence": [4]}, "objects per sequence"),
        ({"widths": [8]}, "width must be between"),
    ],
)
def test_davis_bad_parameters(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        make_synthetic_davis(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_cli_davis_json(tmp_path, run_cli):
    out = tmp_path / "d"
    result = run_cli("synth", "davis", out, "--sequences", 2, "--frames", 3, "--height", 48, "--width", 80, "--json")
    assert result.exit_code == 0, result
    report = result.json()
    assert report["kind"] == "davis" and len(report["sequences"]) == 2
    assert DavisDataset(out).sequences == [s["name"] for s in report["sequences"]]
    again = run_cli("synth", "davis", out, "--json")
    assert again.exit_code == 2 and again.stdout == ""
    assert again.stderr.startswith("error: output folder") and again.stderr.count("\n") == 1
    wide = run_cli("synth", "davis", out, "--overwrite", "--frames", 2, "--height", 48, "--widths", "80,96", "--json")
    assert wide.exit_code == 0, wide
    assert [s["size"][1] for s in wide.json()["sequences"]] == [80, 96, 80]


def test_cli_voc_and_bad_options(tmp_path, run_cli):
    out = tmp_path / "v"
    result = run_cli("synth", "voc", out, "--train", 3, "--val", 2, "--size", 64, "--json")
    assert result.exit_code == 0, result
    assert result.json()["train"] == 3 and len(VocDataset(out, "val")) == 2
    human = run_cli("synth", "voc", tmp_path / "v2", "--train", 1, "--val", 1, "--size", 64)
    assert human.exit_code == 0 and "objects:" in human.stdout and "wrote VOC layout" in human.stderr
    for args in (["--year", "2015"], ["--widths", "80,abc"]):
        bad = run_cli("synth", "davis", tmp_path / "bad", *args)
        assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
        assert not (tmp_path / "bad").exists()
