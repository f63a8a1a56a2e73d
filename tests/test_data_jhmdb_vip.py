"""The JHMDB and VIP layouts: the synthetic twins are written exactly as the real sets, the readers take
them back, and malformed files are named errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat, savemat

from dense_retrieval.data.jhmdb import JOINTS, JhmdbDataset, read_joints
from dense_retrieval.data.keypoint_results import read_joints_file, write_joints_file
from dense_retrieval.data.synth import make_synthetic_jhmdb, make_synthetic_vip
from dense_retrieval.data.vip import CLASSES, VipDataset
from dense_retrieval.errors import DataFormatError, InputError, OutputExistsError


@pytest.fixture(scope="module")
def jhmdb(tmp_path_factory):
    root = tmp_path_factory.mktemp("jhmdb") / "JHMDB"
    manifest = make_synthetic_jhmdb(root, num_videos=2, num_frames=5, size=(64, 80), train_videos=1)
    return root, manifest


@pytest.fixture(scope="module")
def vip(tmp_path_factory):
    root = tmp_path_factory.mktemp("vip") / "VIP_Fine"
    manifest = make_synthetic_vip(root, num_videos=2, num_frames=5, size=(64, 80), annotate_every=2)
    return root, manifest


def test_synthetic_jhmdb_is_the_official_layout(jhmdb):
    root, manifest = jhmdb
    test = [v for v in manifest["videos"] if v["split"] == "test"]
    train = [v for v in manifest["videos"] if v["split"] == "train"]
    assert len(test) == 2 and len(train) == 1
    for video in manifest["videos"]:
        frames = sorted((root / "Rename_Images" / video["action"] / video["name"]).iterdir())
        assert [p.name for p in frames] == [f"{i:05d}.png" for i in range(1, 6)]
        mat = loadmat(root / "joint_positions" / video["action"] / video["name"] / "joint_positions.mat")
        assert mat["pos_img"].shape == (2, 15, 5)
        assert mat["pos_img"].min() >= 1 - 80  # 1-based, as JHMDB
    lines = (root / "splits" / f"{test[0]['action']}_test_split1.txt").read_text().splitlines()
    assert lines == [f"{test[0]['name']}.avi 2 "]
    dataset = JhmdbDataset(root, split=1)
    assert sorted(dataset.videos) == sorted(v["name"] for v in test)  # the training video is not run
    joints = dataset.joints(test[0]["name"])
    assert joints.shape == (5, len(JOINTS), 2)
    np.testing.assert_allclose(joints + 1, loadmat(dataset.video(test[0]["name"]).joints_path)["pos_img"].T)


def test_jhmdb_reader_names_what_is_wrong(jhmdb, tmp_path):
    root, manifest = jhmdb
    with pytest.raises(InputError, match="not found"):
        JhmdbDataset(tmp_path / "nope")
    with pytest.raises(DataFormatError, match="split 2"):
        JhmdbDataset(root, split=2)
    with pytest.raises(DataFormatError, match="no split folder"):
        JhmdbDataset(root, splits=tmp_path / "absent")
    with pytest.raises(DataFormatError, match="no split 1 files"):
        JhmdbDataset(root, splits=tmp_path)
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "walk_test_split1.txt").write_text("clip.avi 3\n")
    with pytest.raises(DataFormatError, match="line 1"):
        JhmdbDataset(root, splits=splits)
    (splits / "walk_test_split1.txt").write_text("../escape.avi 2\n")
    with pytest.raises(DataFormatError, match="not a plain name"):
        JhmdbDataset(root, splits=splits)
    bad = tmp_path / "bad.mat"
    savemat(bad, {"pos_img": np.ones((2, 14, 3))})
    with pytest.raises(DataFormatError, match="2 x 15"):
        read_joints(bad)
    savemat(bad, {"pos_img": np.full((2, 15, 3), np.nan)})
    with pytest.raises(DataFormatError, match="NaN"):
        read_joints(bad)
    savemat(bad, {"other": np.ones(3)})
    with pytest.raises(DataFormatError, match="no pos_img"):
        read_joints(bad)
    bad.write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(DataFormatError, match="unreadable"):
        read_joints(bad)


def test_synthetic_vip_is_the_vip_fine_layout(vip):
    root, manifest = vip
    assert (root / "lists" / "val_videos.txt").read_text().split() == ["videos1", "videos2"]
    frames = sorted((root / "Images" / "videos1").iterdir())
    assert [p.name for p in frames] == [f"{i:012d}.jpg" for i in range(1, 6)]
    labels = sorted((root / "Category_ids" / "videos1").iterdir())
    assert [p.name for p in labels] == [f"{i:012d}.png" for i in (1, 3, 5)]  # every 2nd frame annotated
    with Image.open(labels[0]) as image:
        assert image.mode == "L" and image.size == (80, 64)
    dataset = VipDataset(root)
    video = dataset.video("videos1")
    assert video.annotated == ("000000000001", "000000000003", "000000000005") and len(video.frames) == 5
    parts = dataset.read_parts(video.annotations[video.annotated[0]])
    assert set(np.unique(parts)) <= set(range(len(CLASSES))) and len(np.unique(parts)) >= 8


def test_vip_reader_names_what_is_wrong(vip, tmp_path):
    root, _ = vip
    with pytest.raises(DataFormatError, match="missing video list"):
        VipDataset(root, tmp_path / "none.txt")
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"videos\xff\n")
    with pytest.raises(DataFormatError, match="UTF-8"):
        VipDataset(root, listing)
    listing.write_text("videos1\n../x\n")
    with pytest.raises(DataFormatError, match="plain name"):
        VipDataset(root, listing)
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((4, 4), 25, np.uint8)).save(bad)
    with pytest.raises(DataFormatError, match="id 25"):
        VipDataset(root).read_parts(bad)


def test_synthetic_sets_are_reproducible_and_refuse_foreign_folders(tmp_path):
    a = make_synthetic_vip(tmp_path / "a", num_videos=1, num_frames=3, size=(40, 48), seed=3)
    b = make_synthetic_vip(tmp_path / "b", num_videos=1, num_frames=3, size=(40, 48), seed=3)
    assert a == b
    for name in ("Images/videos1/000000000002.jpg", "Category_ids/videos1/000000000003.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(OutputExistsError):
        make_synthetic_jhmdb(tmp_path / "mine", num_videos=1, num_frames=2, size=(40, 48), overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_predicted_joints_round_trip_and_a_malformed_file_is_refused(tmp_path):
    joints = np.random.default_rng(0).uniform(0, 100, (3, 15, 2))
    joints[1, 4] = np.nan
    path = tmp_path / "joints.json"
    write_joints_file(path, "clip", "walk", (240, 320), (40, 40), joints)
    back = read_joints_file(path, 15)
    np.testing.assert_allclose(back, np.round(joints, 3), equal_nan=True)
    document = json.loads(path.read_text())
    assert document["joints"][1][4] is None and document["frame_size"] == [240, 320]
    for broken in ({"joints": "many"}, {"joints": [[[1, 2]] * 14]}, {"joints": [[["x", 2]] * 15]}):
        path.write_text(json.dumps(broken))
        with pytest.raises(DataFormatError):
            read_joints_file(path, 15)
    path.write_text("{not json")
    with pytest.raises(DataFormatError, match="not JSON"):
        read_joints_file(path, 15)
