"""What pretraining learns from: folders (recursive), videos, frame folders, DAVIS roots; unreadable files."""

from __future__ import annotations

import numpy as np
import pytest

from dense_retrieval.data.davis import write_davis_sequence
from dense_retrieval.data.images import write_image
from dense_retrieval.data.video import read_video_frame, write_frames, write_video
from dense_retrieval.errors import DataFormatError, InputError
from dense_retrieval.pretrain.config import OURS_CPU
from dense_retrieval.pretrain.dataset import MultiCropDataset
from dense_retrieval.pretrain.source import scan_sources
from tests.pretrain_helpers import write_photos


def _frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    return [np.full((height, width, 3), 20 * i + 10, np.uint8) for i in range(count)]


def test_folders_are_walked_recursively_in_name_order(tmp_path):
    write_photos(tmp_path / "a", 2, size=32)
    write_photos(tmp_path / "b" / "deeper", 3, size=32, seed=1)
    (tmp_path / "notes.txt").write_text("not an image")
    write_image(tmp_path / "a" / ".hidden.jpg", np.zeros((8, 8, 3), np.uint8))
    source = scan_sources([tmp_path])
    names = [item.path.relative_to(tmp_path).as_posix() for item in source.items]
    assert names == ["a/photo_000.jpg", "a/photo_001.jpg"] + [f"b/deeper/photo_00{i}.jpg" for i in range(3)]
    assert source.counts["images"] == 5 and source.counts["skipped"] == 0


def test_video_files_and_frame_folders(tmp_path):
    write_video(tmp_path / "clip.mp4", _frames(5), fps=5)
    write_frames(tmp_path / "frames", _frames(4))
    source = scan_sources([tmp_path / "clip.mp4", tmp_path / "frames"])
    assert [item.frame for item in source.items[:5]] == [0, 1, 2, 3, 4]
    assert source.counts == {"images": 4, "videos": 1, "video_frames": 5, "davis_roots": 0, "skipped": 0}
    frame = source.items[3].read()  # random access into the video
    assert frame.shape == (48, 64, 3) and abs(float(frame.mean()) - 70) < 6
    assert len(scan_sources([tmp_path / "clip.mp4"], frame_step=2)) == 3
    with pytest.raises(DataFormatError):
        read_video_frame(tmp_path / "clip.mp4", 50)


def test_a_davis_root_contributes_its_frames_and_never_its_annotations(tmp_path):
    root = tmp_path / "data" / "davis"
    labels = [np.zeros((48, 64), np.uint8) for _ in range(3)]
    write_davis_sequence(root, "seq-a", _frames(3), labels)
    write_davis_sequence(root, "seq-b", _frames(2), labels[:2])
    for given in (root, tmp_path / "data"):  # as DATA, or met while walking a folder
        source = scan_sources([given])
        assert len(source) == 5 and source.counts["davis_roots"] == 1
        assert all(item.path.parent.parent.name == "480p" and item.path.suffix == ".jpg" for item in source.items)


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    write_photos(tmp_path, 3, size=32)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not a PNG")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    source = scan_sources([tmp_path])
    assert len(source) == 3 and source.counts["skipped"] == 3
    assert {name.rsplit("/", 1)[-1] for name, _ in source.skipped} == {"empty.jpg", "text.png", "broken.mp4"}


def test_a_file_that_fails_only_when_decoded_is_replaced_and_counted(tmp_path):
    paths = write_photos(tmp_path, 8, size=64)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) // 3])  # header intact, the rest cut off
    source = scan_sources([tmp_path])
    assert len(source) == 8  # the header check passes it
    dataset = MultiCropDataset(source, OURS_CPU)
    sample = dataset[(0, 2)]
    assert sample["unreadable"] == 1 and sample["index"] == 3
    assert dataset[(0, 1)]["unreadable"] == 0


def test_empty_or_missing_sources_are_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no readable images or videos"):
        scan_sources([tmp_path / "empty"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"junk")
    with pytest.raises(InputError, match="1 unreadable file"):
        scan_sources([tmp_path / "bad"])
    with pytest.raises(InputError, match="no such file or folder"):
        scan_sources([tmp_path / "missing"])
    with pytest.raises(InputError, match="no pretraining data"):
        scan_sources([])
