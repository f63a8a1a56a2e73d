"""Segmentation sets in their own layouts: VOC trainaug, ADE20K (ADEChallengeData2016), folders; id lists."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dense_retrieval.data.images import write_image
from dense_retrieval.data.masks import write_label_png
from dense_retrieval.data.segmentation_sets import ADE20K_CLASSES, open_split, read_ids
from dense_retrieval.data.synth import make_synthetic_ade20k, make_synthetic_voc
from dense_retrieval.errors import DataFormatError, InputError


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets") / "VOCdevkit" / "VOC2012"
    make_synthetic_voc(root, num_train=5, num_val=2, size=64, trainaug=True)
    return root


@pytest.fixture(scope="module")
def ade(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets") / "ADEChallengeData2016"
    make_synthetic_ade20k(root, num_train=4, num_val=2, size=64)
    return root


def test_voc_trainaug_reads_the_augmented_labels_and_val_the_plain_ones(voc):
    train = open_split("voc", voc.parent, "trainaug")  # a VOCdevkit folder resolves to VOC2012
    val = open_split("voc", voc, "val")
    assert len(train) == 5 and len(val) == 2 and train.num_classes == 21 and train.ignore_index == 255
    assert train.labels[0].parent.name == "SegmentationClassAug" and val.labels[0].parent.name == "SegmentationClass"
    rgb, labels = train.read(0)
    assert rgb.shape[:2] == labels.shape == (64, 64)


def test_deeplab_style_pair_lists_and_id_files(voc, tmp_path):
    pairs = tmp_path / "train_aug.txt"
    pairs.write_text("/JPEGImages/synth_000003.jpg /SegmentationClassAug/synth_000003.png\nsynth_000001\n")
    assert read_ids(pairs) == ["synth_000003", "synth_000001"]
    subset = open_split("voc", voc, "trainaug", ids_file=pairs)
    assert subset.ids == ("synth_000003", "synth_000001")
    missing = tmp_path / "missing.txt"
    missing.write_text("synth_000001\nnot_an_image\n")
    with pytest.raises(DataFormatError, match="not_an_image"):
        open_split("voc", voc, "trainaug", ids_file=missing)


def test_ade20k_has_151_channels_and_ignores_other(ade):
    train, val = open_split("ade20k", ade.parent, "training"), open_split("ade20k", ade, "val")
    assert len(ADE20K_CLASSES) == 151 and ADE20K_CLASSES[0] == "other" and ADE20K_CLASSES[150] == "flag"
    assert train.num_classes == 151 and train.ignore_index == 0 and len(train) == 4 and len(val) == 2
    assert train.ids[0] == "ADE_train_00000001" and val.split == "validation"
    labels = np.concatenate([train.read(i)[1].ravel() for i in range(len(train))])
    assert labels.max() <= 150 and 0 in labels


def test_folder_sets_need_a_class_count(tmp_path):
    for split in ("train", "val"):
        for index in range(2):
            write_image(tmp_path / split / "images" / f"img{index}.png", np.zeros((16, 16, 3), np.uint8))
            write_label_png(tmp_path / split / "labels" / f"img{index}.png", np.full((16, 16), index, np.uint8))
    found = open_split("folder", tmp_path, "train", num_classes=3)
    assert found.ids == ("img0", "img1") and found.class_names[2] == "class 2"
    with pytest.raises(InputError, match="--num-classes"):
        open_split("folder", tmp_path, "train")
    with pytest.raises(InputError, match="--num-classes is for"):
        open_split("voc", tmp_path, "train", num_classes=3)


def test_layout_errors_name_what_is_missing(voc, tmp_path):
    broken = tmp_path / "voc"
    shutil.copytree(voc, broken)
    shutil.rmtree(broken / "SegmentationClassAug")
    with pytest.raises(DataFormatError, match="SegmentationClassAug"):
        open_split("voc", broken, "trainaug")
    (broken / "SegmentationClass" / "synth_000005.png").unlink()
    with pytest.raises(DataFormatError, match="synth_000005"):
        open_split("voc", broken, "val")
    with pytest.raises(InputError, match="unknown dataset kind"):
        open_split("cityscapes", broken, "val")
    with pytest.raises(InputError, match="no split"):
        open_split("ade20k", broken, "test")


def test_eval_dense_help_names_every_kind(run_cli):
    from dense_retrieval.data.segmentation_sets import KINDS

    text = run_cli("retrieval", "eval-dense", "--help").stdout
    assert all(kind in text for kind in KINDS)


def test_the_bench_registration_names_every_kind():
    from dense_retrieval.bench.benchmarks import SEGMENTATION_KINDS
    from dense_retrieval.data.segmentation_sets import KINDS

    assert SEGMENTATION_KINDS == KINDS
