"""The PASCAL VOC layout: writers and reader round-trip; broken layouts fail with one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from dense_retrieval.data.masks import read_label_png
from dense_retrieval.data.voc import (
    VOC7_CLASS_IDS,
    VOC7_CLASSES,
    VOC_CLASSES,
    VocDataset,
    seven_class_labels,
    write_voc_image_set,
    write_voc_sample,
)
from dense_retrieval.errors import DataFormatError, InputError


def _write_root(root, ids=("a", "b"), objects=True):
    rng = np.random.default_rng(0)
    for index, image_id in enumerate(ids):
        image = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
        classes = np.zeros((20, 30), np.uint8)
        classes[5:15, 5:15] = 8 + index
        classes[4, 5:15] = 255
        instances = (classes == 8 + index).astype(np.uint8)
        instances[4, 5:15] = 255
        write_voc_sample(root, image_id, image, classes, instances if objects else None)
    write_voc_image_set(root, list(ids), "train")
    return root


def test_class_tables_follow_voc():
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background" and VOC_CLASSES[20] == "tvmonitor"
    assert VOC7_CLASS_IDS == (1, 5, 6, 7, 8, 10, 15)
    assert VOC7_CLASSES == ("aeroplane", "bottle", "bus", "car", "cat", "cow", "person")


def test_round_trip(tmp_path):
    root = _write_root(tmp_path / "VOC2012")
    dataset = VocDataset(root, "train")
    assert dataset.ids == ["a", "b"] and len(dataset) == 2
    sample = next(iter(dataset))
    assert sample.image == root / "JPEGImages" / "a.jpg"
    assert sample.class_labels == root / "SegmentationClass" / "a.png"
    assert sample.object_labels == root / "SegmentationObject" / "a.png"
    assert dataset.read_image("b").shape == (20, 30, 3)
    classes = dataset.read_class_labels("b")
    assert set(np.unique(classes).tolist()) == {0, 9, 255}
    assert set(np.unique(dataset.read_object_labels("b")).tolist()) == {0, 1, 255}
    # the written PNG is indexed with the VOC palette (mode P), as VOC's own files
    from PIL import Image

    with Image.open(sample.class_labels) as image:
        assert image.mode == "P"


def test_devkit_folder_resolves_to_voc2012(tmp_path):
    _write_root(tmp_path / "VOCdevkit" / "VOC2012")
    assert VocDataset(tmp_path, "train").root == tmp_path / "VOCdevkit" / "VOC2012"
    assert VocDataset(tmp_path / "VOCdevkit", "train").root == tmp_path / "VOCdevkit" / "VOC2012"


def test_without_segmentation_object(tmp_path):
    dataset = VocDataset(_write_root(tmp_path / "voc", objects=False), "train")
    assert dataset.sample("a").object_labels is None
    with pytest.raises(DataFormatError, match="no SegmentationObject"):
        dataset.read_object_labels("a")


def test_missing_root_is_input_error(tmp_path):
    with pytest.raises(InputError, match="VOC root not found"):
        VocDataset(tmp_path / "nope")


def test_missing_folder(tmp_path):
    root = _write_root(tmp_path / "voc")
    (root / "SegmentationClass" / "a.png").unlink()
    (root / "SegmentationClass" / "b.png").unlink()
    (root / "SegmentationClass").rmdir()
    with pytest.raises(DataFormatError, match="has no SegmentationClass/ folder"):
        VocDataset(root, "train")


def test_missing_split_file_names_available_splits(tmp_path):
    root = _write_root(tmp_path / "voc")
    with pytest.raises(DataFormatError, match=r"missing split file .*val\.txt.*available splits: train"):
        VocDataset(root, "val")


def test_empty_split_file(tmp_path):
    root = _write_root(tmp_path / "voc")
    write_voc_image_set(root, [], "val")
    with pytest.raises(DataFormatError, match="lists no image ids"):
        VocDataset(root, "val")


def test_listed_id_without_image(tmp_path):
    root = _write_root(tmp_path / "voc")
    (root / "JPEGImages" / "b.jpg").unlink()
    with pytest.raises(DataFormatError, match=r"'b' is listed in train.txt but .*b\.jpg is missing") as info:
        VocDataset(root, "train")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_listed_id_without_label(tmp_path):
    root = _write_root(tmp_path / "voc")
    (root / "SegmentationClass" / "a.png").unlink()
    with pytest.raises(DataFormatError, match="'a' is listed in train.txt but has no label"):
        VocDataset(root, "train")


def test_writer_refuses_labels_of_another_size(tmp_path):
    with pytest.raises(InputError, match="class_labels"):
        write_voc_sample(tmp_path, "x", np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8))
    assert not (tmp_path / "JPEGImages").exists()


def test_seven_class_labels():
    labels = np.array([[0, 1, 2, 5], [14, 15, 16, 255]], dtype=np.uint8)
    expected = np.array([[0, 1, 255, 5], [255, 15, 255, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(seven_class_labels(labels), expected)


def test_split_file_tolerates_blank_lines_and_duplicates(tmp_path):
    root = _write_root(tmp_path / "voc")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\n\nb\na\n")
    assert VocDataset(root, "train").ids == ["a", "b"]
    assert read_label_png(root / "SegmentationClass" / "a.png")[4, 5] == 255
