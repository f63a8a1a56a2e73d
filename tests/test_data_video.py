"""Video I/O: real MP4 files written and read back, frame folders, and the errors for broken inputs."""

from __future__ import annotations

import numpy as np
import pytest

from dense_retrieval.data.images import write_image
from dense_retrieval.data.video import VideoFrames, open_video, write_frames, write_video
from dense_retrieval.errors import DataFormatError, InputError, OutputExistsError


def _frames(count, height=64, width=96):
    """Smooth frames with a bright square moving right: easy to recognise after lossy coding."""
    for index in range(count):
        frame = np.full((height, width, 3), (40, 80, 120), dtype=np.uint8)
        frame[16:40, 8 + 6 * index : 32 + 6 * index] = (230, 200, 30)
        yield frame


def test_mp4_round_trip(tmp_path):
    path = tmp_path / "clip.mp4"
    info = write_video(path, _frames(8), fps=12.0)
    assert info.count == 8 and info.size == (64, 96) and info.fps == 12.0
    assert path.is_file() and path.read_bytes()[4:8] == b"ftyp"  # an MPEG-4 container
    assert not [p for p in tmp_path.iterdir() if p.name != "clip.mp4"]  # no temporary left behind

    video = open_video(path)
    assert video.info.kind == "file" and video.info.count == 8 and video.info.size == (64, 96)
    assert video.info.fps == pytest.approx(12.0)
    assert video.frame_names[:2] == ["00000", "00001"]
    decoded = list(video)
    assert len(decoded) == 8
    for original, frame in zip(_frames(8), decoded, strict=True):
        assert frame.dtype == np.uint8 and frame.shape == (64, 96, 3)
        assert np.abs(frame.astype(int) - original.astype(int)).mean() < 6  # lossy, but the same picture
    # RGB order kept: the square is yellow, not blue
    square = decoded[0][20:36, 12:28].reshape(-1, 3).mean(0)
    assert square[0] > 180 and square[2] < 90
    assert len(list(video)) == 8  # iterable again


def test_odd_size_is_padded_to_even(tmp_path):
    info = write_video(tmp_path / "odd.mp4", _frames(3, height=33, width=47))
    assert info.size == (34, 48)
    assert open_video(tmp_path / "odd.mp4").info.size == (34, 48)


def test_write_video_rejects_bad_frames_and_leaves_nothing(tmp_path):
    path = tmp_path / "bad.mp4"
    with pytest.raises(InputError, match="no frames"):
        write_video(path, [])
    with pytest.raises(InputError, match="must be uint8"):
        write_video(path, [np.zeros((8, 8), np.uint8)])

    def mixed():
        yield np.zeros((16, 16, 3), np.uint8)
        yield np.zeros((16, 18, 3), np.uint8)

    with pytest.raises(InputError, match="frame 1 is 16x18"):
        write_video(path, mixed())
    assert list(tmp_path.iterdir()) == []


def test_write_video_keeps_previous_file_when_interrupted(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, _frames(4))
    before = path.read_bytes()

    def broken():
        yield from _frames(2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_video(path, broken())
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_frame_folder_sorted_numerically(tmp_path):
    frames = list(_frames(12))
    for index, frame in enumerate(frames):
        write_image(tmp_path / f"{index}.png", frame)  # 0.png ... 11.png: "10" sorts before "2" as text
    video = VideoFrames(tmp_path)
    assert video.info.kind == "frames" and video.info.count == 12 and video.info.fps is None
    assert video.frame_names == [str(i) for i in range(12)]
    for original, frame in zip(frames, video, strict=True):
        np.testing.assert_array_equal(frame, original)


def test_write_frames_round_trip(tmp_path):
    assert write_frames(tmp_path / "frames", _frames(5), suffix=".png") == 5
    video = open_video(tmp_path / "frames")
    assert video.frame_names == ["00000", "00001", "00002", "00003", "00004"]
    np.testing.assert_array_equal(next(iter(video)), next(_frames(1)))
    with pytest.raises(OutputExistsError):
        write_frames(tmp_path / "frames", _frames(2))
    assert write_frames(tmp_path / "frames", _frames(2), overwrite=True) == 2
    assert len(open_video(tmp_path / "frames")) == 2


def test_frame_folder_with_gap_names_the_frame(tmp_path):
    for index in (0, 1, 2, 4, 5):
        write_image(tmp_path / f"{index:05d}.jpg", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"gap in the numbering before 00004\.jpg \(frame 3 missing\)") as info:
        VideoFrames(tmp_path)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_frame_folder_with_mixed_sizes_names_the_frame(tmp_path):
    for index in range(4):
        write_image(tmp_path / f"{index:05d}.png", np.zeros((8, 10 if index == 2 else 8, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"00002\.png is 8x10 but 00000\.png is 8x8"):
        VideoFrames(tmp_path)


def test_frame_folder_without_numbers_or_frames(tmp_path):
    with pytest.raises(DataFormatError, match="no frames"):
        VideoFrames(tmp_path)
    write_image(tmp_path / "cover.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataFormatError, match="cover.png has no frame number"):
        VideoFrames(tmp_path)


def test_frame_folder_with_duplicate_numbers(tmp_path):
    write_image(tmp_path / "1.png", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "001.jpg", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataFormatError, match="are both frame 1"):
        VideoFrames(tmp_path)


def test_video_that_cannot_be_opened(tmp_path, capfd):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"this is not a video")
    with pytest.raises(DataFormatError, match="cannot open video") as info:
        open_video(path)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    assert capfd.readouterr().err == ""  # OpenCV/FFmpeg kept quiet


def test_truncated_video(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, _frames(6))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataFormatError):
        list(open_video(path))


def test_missing_video(tmp_path):
    with pytest.raises(InputError, match="video not found"):
        open_video(tmp_path / "none.mp4")
