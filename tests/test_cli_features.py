import numpy as np
import pytest

from dense_retrieval.data.feature_store import read_feature_store, write_feature_store
from dense_retrieval.data.images import write_image
from dense_retrieval.data.video import write_video
from dense_retrieval.errors import DataFormatError

RANDOM = ("--backbone", "mobilenet_v2", "--weights", "random", "--layer", "features.6")


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    for index in range(3):
        write_image(folder / f"img{index}.png", rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    video = tmp_path / "clip.mp4"
    write_video(video, [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(4)], fps=10)
    return folder, video


def test_features_of_images_and_a_video_land_in_one_file_with_their_config(run_cli, inputs, tmp_path):
    folder, video = inputs
    out = tmp_path / "feats.npz"
    result = run_cli("features", folder, video, "--out", out, *RANDOM, "--l2", "--json")
    assert result.exit_code == 0, result
    report = result.json()
    assert report["count"] == 7 and report["stride"] == 8 and report["channels"] == 32
    store = read_feature_store(out)
    assert store.names[0].endswith("img0.png") and store.names[3] == "clip.mp4/00000"
    assert store[0].shape == (32, 5, 7) and store[6].shape == (32, 4, 6)
    assert np.allclose(np.linalg.norm(store[0], axis=0), 1, atol=1e-4)
    assert store.metadata["backbone"]["weights"] == "random:0" and store.metadata["features"]["l2_normalize"]


def test_existing_output_is_kept_unless_overwrite(run_cli, inputs, tmp_path):
    folder, _ = inputs
    out = tmp_path / "feats.npz"
    out.write_bytes(b"precious")
    result = run_cli("features", folder, "--out", out, *RANDOM)
    assert result.exit_code == 2 and "already exists" in result.stderr and out.read_bytes() == b"precious"
    assert run_cli("features", folder, "--out", out, *RANDOM, "--overwrite").exit_code == 0


def test_truncated_image_is_one_line_exit_2_and_nothing_written(run_cli, inputs, tmp_path):
    folder, _ = inputs
    data = (folder / "img1.png").read_bytes()
    (folder / "img1.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "feats.npz"
    result = run_cli("features", folder, "--out", out, *RANDOM)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: unreadable image") and "img1.png" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".feats.npz*"))


def test_missing_input_and_unknown_layer(run_cli, tmp_path):
    assert run_cli("features", tmp_path / "nope", "--out", tmp_path / "f.npz", *RANDOM).exit_code == 2
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"")
    # the output lies outside the input folder (an output inside an input is refused before any work)
    result = run_cli(
        "features", tmp_path / "in", "--out", tmp_path / "f.npz", "--layer", "layer9", "--weights", "random"
    )
    assert result.exit_code == 2 and "no layer 'layer9'" in result.stderr


def test_store_rejects_a_file_that_is_not_one(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="not a dense-retrieval feature file"):
        read_feature_store(tmp_path / "x.npz")


def test_store_round_trip_in_half_precision(tmp_path):
    import torch

    count = write_feature_store(tmp_path / "f.npz", [("a", torch.ones(3, 2, 2))], {"k": "v"}, dtype="float16")
    store = read_feature_store(tmp_path / "f.npz")
    assert count == 1 and store[0].dtype == np.float16 and store.metadata == {"k": "v", "dtype": "float16"}


def test_a_share_of_the_sources_streams_only_its_frames(inputs):
    # what one torchrun rank of `features` reads: images outside its share are never decoded
    from dense_retrieval.data.sources import open_sources

    folder, video = inputs
    names, everything = open_sources([folder, video])
    everything = list(everything)
    assert len(names) == 7
    for start, stop in [(0, 7), (0, 3), (2, 5), (3, 7), (5, 6), (6, 9), (7, 7)]:
        _, share = open_sources([folder, video], start, stop)
        frames = list(share)
        assert len(frames) == max(0, min(stop, 7) - start)
        for (name, frame), (expected_name, expected) in zip(frames, everything[start:stop], strict=True):
            assert name == expected_name
            np.testing.assert_array_equal(frame, expected)
    assert [name for name, _ in everything] == names
    (folder / "img1.png").write_bytes(b"broken")  # decoded only by the shares that hold it
    assert len(list(open_sources([folder, video], 2, 7)[1])) == 5


def test_parts_join_into_the_file_one_process_writes(tmp_path):
    import torch

    from dense_retrieval.data.feature_store import join_feature_stores

    maps = [torch.rand(4, 3 + i, 5) for i in range(5)]
    names = [f"frame{i}" for i in range(5)]
    write_feature_store(tmp_path / "whole.npz", zip(names, maps, strict=True), {"backbone": "x"})
    write_feature_store(tmp_path / "a.npz", zip(names[:2], maps[:2], strict=True), {"backbone": "x"})
    write_feature_store(tmp_path / "b.npz", zip(names[2:], maps[2:], strict=True), {"backbone": "x"})
    assert join_feature_stores([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "joined.npz") == 5
    whole, joined = read_feature_store(tmp_path / "whole.npz"), read_feature_store(tmp_path / "joined.npz")
    assert joined.names == whole.names and joined.metadata == whole.metadata
    for index in range(5):
        np.testing.assert_array_equal(joined[index], whole[index])
    write_feature_store(tmp_path / "c.npz", zip(names[:1], maps[:1], strict=True), {"backbone": "other"})
    with pytest.raises(DataFormatError, match="another configuration"):
        join_feature_stores([tmp_path / "a.npz", tmp_path / "c.npz"], tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()
