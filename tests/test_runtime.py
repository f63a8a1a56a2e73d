"""Work ahead in a thread, thread splits, the allocator setting; the overlapped frame loop built on them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.features import FeatureExtractor
from dense_retrieval.backbone.networks import build_backbone
from dense_retrieval.errors import DataFormatError
from dense_retrieval.propagation import CRW
from dense_retrieval.runtime import (
    InlineExecutor,
    ahead,
    available_cores,
    producing,
    stage_threads,
    tune_allocator,
    worker_pool,
)
from dense_retrieval.vos.frames import propagate_frames


def _ahead_threads() -> int:
    """Producers of ahead() still running (their threads are kept idle for the next stream)."""
    return producing()


def test_ahead_yields_everything_in_order_and_bounds_the_work_done_ahead():
    produced = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    stream = ahead(source(), depth=3)
    assert next(stream) == 0
    time.sleep(0.2)  # the producer fills the queue and waits
    assert len(produced) <= 1 + 3 + 1  # consumed, queued, the one waiting to be queued
    assert list(stream) == list(range(1, 100))
    assert not _ahead_threads()


def test_ahead_raises_the_producers_error_where_it_happened():
    def source():
        yield 1
        yield 2
        raise DataFormatError("frame 3 is unreadable")

    got = []
    with pytest.raises(DataFormatError, match="frame 3"):
        for item in ahead(source()):
            got.append(item)
    assert got == [1, 2] and not _ahead_threads()


def test_leaving_the_loop_early_stops_the_producer():
    produced = []

    def source():
        for i in range(10_000):
            produced.append(i)
            yield i

    stream = ahead(source(), depth=2)
    for item in stream:
        if item == 5:
            break
    stream.close()
    assert not _ahead_threads()
    assert len(produced) <= 5 + 2 + 2


def test_stage_threads_and_cores():
    assert stage_threads(1) == (1, 1) and stage_threads(2) == (1, 2)
    assert stage_threads(3) == (1, 3) and stage_threads(16) == (5, 16)
    assert available_cores() >= 1


def test_worker_pools_run_single_threaded_and_inline_pools_run_at_once():
    pool = worker_pool(2, threads=1)
    assert {pool.submit(torch.get_num_threads).result() for _ in range(4)} == {1}
    assert worker_pool(2, threads=1) is pool  # one pool per plan for the life of the process
    inline = worker_pool(0)
    assert isinstance(inline, InlineExecutor)
    assert inline.submit(lambda x: x + 1, 1).result() == 2
    failed = inline.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failed.result()


def test_tune_allocator_reports_whether_it_took():
    assert tune_allocator() in (True, False)  # never raises; True on Linux with glibc
    assert torch.ones(1 << 20).sum() == 1 << 20  # allocations still work afterwards


@pytest.fixture(scope="module")
def small_extractor():
    backbone = build_backbone(name="mobilenet_v2", layer="features.6", output_stride=8, weights="random:3")
    return FeatureExtractor(backbone, FeatureConfig(l2_normalize=True, batch_size=2, device="cpu"))


def _frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (72 + count * 3, 104 + count * 3, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[3 * t : 3 * t + 72, 3 * t : 3 * t + 104]) for t in range(count)]


def _first_mask() -> np.ndarray:
    mask = np.zeros((72, 104), dtype=np.uint8)
    mask[20:50, 30:70] = 1
    mask[5:15, 5:25] = 2
    return mask


def test_overlapped_frame_loop_gives_the_sequential_masks_and_restores_threads(small_extractor):
    frames, config = _frames(7), CRW.replace(context=3, radius=4.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        sequential = [labels for _, labels in propagate_frames(frames, _first_mask(), small_extractor, config)]
        torch.set_num_threads(2)  # features and propagation one thread each, side by side
        seen = []

        def source():
            for frame in frames:
                seen.append(threading.current_thread().name)
                yield frame

        overlapped = [labels for _, labels in propagate_frames(source(), _first_mask(), small_extractor, config)]
        assert all(name.startswith("dense-retrieval-ahead") for name in seen)  # read in the background
        assert torch.get_num_threads() == 2 and not _ahead_threads()
        assert len(overlapped) == len(sequential) == 7
        assert all(np.array_equal(a, b) for a, b in zip(overlapped, sequential, strict=True))
        # an early stop ends the reader and restores the caller's threads too
        loop = propagate_frames(frames, _first_mask(), small_extractor, config)
        next(loop)
        next(loop)
        loop.close()
        assert torch.get_num_threads() == 2 and not _ahead_threads()
    finally:
        torch.set_num_threads(before)


def test_overlapped_frame_loop_reports_a_frame_of_another_size(small_extractor):
    frames = _frames(4)
    frames[2] = np.zeros((64, 104, 3), dtype=np.uint8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(DataFormatError, match="frame 2 is 64x104"):
            list(propagate_frames(frames, _first_mask(), small_extractor, CRW.replace(context=2, radius=3.0)))
        assert torch.get_num_threads() == 2 and not _ahead_threads()
    finally:
        torch.set_num_threads(before)
