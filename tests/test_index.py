"""SegmentIndex: exact search equals brute force, IVF recall, persistence, atomicity, concurrency, bad input."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from dense_retrieval.errors import ConfigMismatchError, DataFormatError, InputError
from dense_retrieval.retrieval.index import SegmentIndex, index_config
from dense_retrieval.retrieval.segments import SegmentRecord, decode_rle

DIM = 32
CONFIG = index_config(
    {"backbone": {"name": "toy", "layer": "x", "weights": "w"}, "features": {"batch_size": 4}}, "upsample", DIM
)
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def unit_vectors(n: int, dim: int = DIM, seed: int = 0, clusters: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if clusters:
        centres = rng.normal(size=(clusters, dim))
        x = centres[rng.integers(clusters, size=n)] + 0.3 * rng.normal(size=(n, dim))
    else:
        x = rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def records(n: int, start: int = 0, size: tuple[int, int] = (12, 16)) -> list[SegmentRecord]:
    out = []
    for i in range(start, start + n):
        mask = np.zeros(size, dtype=bool)
        mask[i % size[0] :, (i * 3) % size[1] :] = True
        out.append(SegmentRecord(image=f"/images/img{i // 3}.jpg", method="kmeans", mask=mask, label=i % 5 or None))
    return out


def test_exact_search_equals_brute_force(tmp_path):
    bank = unit_vectors(500)
    queries = unit_vectors(20, seed=1)
    with SegmentIndex.create(tmp_path / "idx", CONFIG) as index:
        index.add(bank[:300], records(300), CONFIG)
        index.add(bank[300:], records(200, start=300), CONFIG)  # incremental add
    with SegmentIndex.open(tmp_path / "idx") as index:
        assert index.ntotal == 500
        scores, ids = index.search(queries, k=10)
    similarity = queries @ bank.T
    expected = np.argsort(-similarity, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(similarity, expected, 1), rtol=1e-5, atol=1e-6)


def test_metadata_rows_are_the_faiss_ids(tmp_path):
    items = records(7)
    with SegmentIndex.create(tmp_path / "idx", CONFIG) as index:
        ids = index.add(unit_vectors(7), items, CONFIG)
        np.testing.assert_array_equal(ids, np.arange(7))
        segments = index.segments([6, 0, 3])
    assert [s.id for s in segments] == [6, 0, 3]
    for segment in segments:
        original = items[segment.id]
        np.testing.assert_array_equal(segment.mask(), original.mask)
        ys, xs = np.nonzero(original.mask)
        assert segment.area == original.mask.sum()
        assert segment.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert segment.label == original.label and segment.image == original.image
    np.testing.assert_array_equal(decode_rle(segments[0].rle), items[6].mask)


def test_ivf_pq_recall_against_exact(tmp_path):
    bank = unit_vectors(4000, seed=2, clusters=40)
    queries = bank[::40] + 0.05 * unit_vectors(100, seed=3)
    with SegmentIndex.create(tmp_path / "exact", CONFIG) as exact:
        exact.add(bank, records(4000), CONFIG)
        _, truth = exact.search(queries, 1)
    recalls = {}
    for factory, params in (("IVF32,Flat", "nprobe=4"), ("IVF32,PQ8", "nprobe=4"), ("HNSW16", "efSearch=32")):
        with SegmentIndex.create(tmp_path / factory.replace(",", "_"), CONFIG, factory=factory) as index:
            index.add(bank, records(4000), CONFIG)
        with SegmentIndex.open(tmp_path / factory.replace(",", "_")) as index:
            index.set_search_params(params)
            _, found = index.search(queries, 1)
        recalls[factory] = float(np.mean(found[:, 0] == truth[:, 0]))
    print(f"recall@1 against exact: {recalls}")
    assert recalls["IVF32,Flat"] >= 0.9
    assert recalls["IVF32,PQ8"] >= 0.5
    assert recalls["HNSW16"] >= 0.9
    with SegmentIndex.open(tmp_path / "IVF32_Flat") as index, pytest.raises(InputError, match="bad search parameters"):
        index.set_search_params("efSearch=3")


def test_training_needs_enough_vectors(tmp_path):
    with SegmentIndex.create(tmp_path / "idx", CONFIG, factory="IVF64,Flat") as index:
        with pytest.raises(InputError, match="cannot train .* on 10 vectors"):
            index.add(unit_vectors(10), records(10), CONFIG)
        assert index.ntotal == 0


def test_bad_factory_string(tmp_path):
    with pytest.raises(InputError, match="invalid FAISS factory"):
        SegmentIndex.create(tmp_path / "idx", CONFIG, factory="NoSuchIndex")


def test_refuses_features_of_another_configuration(tmp_path):
    with SegmentIndex.create(tmp_path / "idx", CONFIG) as index:
        index.add(unit_vectors(3), records(3), CONFIG)
        other = index_config(
            {"backbone": {"name": "resnet50", "layer": "x", "weights": "w"}, "features": {}}, "upsample", DIM
        )
        with pytest.raises(ConfigMismatchError, match="backbone.name='toy'.*'resnet50'"):
            index.add(unit_vectors(3), records(3), other)
        # batch size does not change vectors: accepted
        same = index_config({"backbone": CONFIG["backbone"], "features": {"batch_size": 64}}, "upsample", DIM)
        index.add(unit_vectors(3), records(3), same)
        with pytest.raises(ConfigMismatchError, match="dimension"):
            index.search(unit_vectors(1, dim=8), 1)
        assert index.ntotal == 6


def test_failed_add_inside_batch_rolls_back(tmp_path):
    with SegmentIndex.create(tmp_path / "idx", CONFIG) as index:
        index.add(unit_vectors(5), records(5), CONFIG)
        with pytest.raises(RuntimeError, match="boom"), index.batch():
            index.add(unit_vectors(5, seed=1), records(5, start=5), CONFIG)
            raise RuntimeError("boom")
        assert index.ntotal == 5
        assert len(index.segments_of_image("/images/img1.jpg")) == 2  # ids 3 and 4
    with SegmentIndex.open(tmp_path / "idx") as index:
        assert index.ntotal == 5 and index.version == 1


def test_corrupted_faiss_file_is_one_line_error(tmp_path):
    with SegmentIndex.create(tmp_path / "idx", CONFIG) as index:
        index.add(unit_vectors(5), records(5), CONFIG)
        file = tmp_path / "idx" / "faiss" / index.info()["faiss_file"]
    original = file.read_bytes()
    file.write_bytes(original[: len(original) // 2])
    with pytest.raises(DataFormatError, match="corrupted FAISS file") as error:
        SegmentIndex.open(tmp_path / "idx")
    assert "\n" not in str(error.value)
    assert file.stat().st_size == len(original) // 2  # nothing touched, nothing lost
    file.write_bytes(original)
    assert SegmentIndex.open(tmp_path / "idx").ntotal == 5


def test_corrupted_database_is_one_line_error(tmp_path):
    with SegmentIndex.create(tmp_path / "idx", CONFIG) as index:
        index.add(unit_vectors(5), records(5), CONFIG)
    db = tmp_path / "idx" / "segments.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    for readonly in (True, False):
        with pytest.raises(DataFormatError, match="corrupted index database") as error:
            SegmentIndex.open(tmp_path / "idx", readonly=readonly)
        assert "\n" not in str(error.value)


def test_missing_index_and_second_writer(tmp_path):
    with pytest.raises(InputError, match="no segment index"):
        SegmentIndex.open(tmp_path / "nothing")
    with SegmentIndex.create(tmp_path / "idx", CONFIG):
        with pytest.raises(InputError, match="being written by another process"):
            SegmentIndex.open(tmp_path / "idx", readonly=False)
        with SegmentIndex.open(tmp_path / "idx") as reader:  # readers are never blocked
            assert reader.ntotal == 0
        with pytest.raises(InputError, match="already exists"):
            SegmentIndex.create(tmp_path / "idx", CONFIG)


def test_orphan_faiss_file_is_ignored_and_pruned(tmp_path):
    # State left by a process killed after writing the next FAISS file but before the SQLite commit.
    with SegmentIndex.create(tmp_path / "idx", CONFIG) as index:
        index.add(unit_vectors(5), records(5), CONFIG)
    faiss_dir = tmp_path / "idx" / "faiss"
    (faiss_dir / "index-000002.faiss").write_bytes((faiss_dir / "index-000001.faiss").read_bytes()[:100])
    (faiss_dir / ".index-000002.faiss.abc.tmp.faiss").write_bytes(b"partial")
    with SegmentIndex.open(tmp_path / "idx") as reader:
        assert reader.ntotal == 5
    with SegmentIndex.open(tmp_path / "idx", readonly=False) as writer:
        writer.add(unit_vectors(2, seed=9), records(2, start=5), CONFIG)
        assert writer.version == 2
    assert sorted(p.name for p in faiss_dir.iterdir()) == ["index-000001.faiss", "index-000002.faiss"]
    assert SegmentIndex.open(tmp_path / "idx").ntotal == 7


_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_index import CONFIG, records, unit_vectors
    from dense_retrieval.retrieval.index import SegmentIndex
    mode, path = sys.argv[1], sys.argv[2]
    index = SegmentIndex.open(path, readonly=False)
    if mode == "batch":          # one long batch of adds: killed before its commit
        with index.batch():
            for step in range(100000):
                index.add(unit_vectors(2000, seed=step), records(2000, start=step * 2000), CONFIG)
                print("added", flush=True)
    elif mode == "commits":      # many small commits, for readers to watch
        for step in range(int(sys.argv[3])):
            index.add(unit_vectors(50, seed=step), records(50, start=step * 50), CONFIG)
            print("committed", index.version, flush=True)
    elif mode == "hold":         # a write transaction left open while a reader looks
        with index.batch():
            index.add(unit_vectors(50), records(50, start=10**6), CONFIG)
            print("holding", flush=True)
            time.sleep(float(sys.argv[3]))
        print("done", flush=True)
    """
)


def _start_writer(tmp_path: Path, *args: str, read: bool = True) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(tests=str(PROJECT_ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE if read else subprocess.DEVNULL,  # an unread pipe would fill up and block the writer
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )


def _small_index(path: Path, n: int = 100) -> np.ndarray:
    bank = unit_vectors(n, seed=42)
    with SegmentIndex.create(path, CONFIG) as index:
        index.add(bank, records(n), CONFIG)
    return bank


@pytest.mark.slow
def test_killed_writer_leaves_previous_index_readable(tmp_path):
    bank = _small_index(tmp_path / "idx")
    writer = _start_writer(tmp_path, "batch", str(tmp_path / "idx"))
    for _ in range(3):  # let it get well into the batch
        assert writer.stdout.readline().strip() == "added"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    with SegmentIndex.open(tmp_path / "idx") as index:
        assert index.ntotal == 100 and index.version == 1
        _, ids = index.search(bank[:5], 1)
        np.testing.assert_array_equal(ids[:, 0], np.arange(5))
    with SegmentIndex.open(tmp_path / "idx", readonly=False) as index:  # the lock died with the process
        index.add(unit_vectors(3), records(3, start=100), CONFIG)
        assert index.ntotal == 103


@pytest.mark.slow
def test_killed_while_writing_faiss_file(tmp_path):
    # Kill the writer at the moment its next FAISS file is being written (the temporary file exists).
    bank = _small_index(tmp_path / "idx")
    faiss_dir = tmp_path / "idx" / "faiss"
    writer = _start_writer(tmp_path, "commits", str(tmp_path / "idx"), "100000", read=False)
    deadline = time.monotonic() + 60
    caught = False
    while time.monotonic() < deadline and not caught:
        caught = any(p.name.endswith(".tmp.faiss") for p in faiss_dir.iterdir())
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert caught, "never saw the writer mid-write"
    with SegmentIndex.open(tmp_path / "idx") as index:
        assert index.ntotal == 100 + 50 * (index.version - 1)
        _, ids = index.search(bank[:3], 1)
        np.testing.assert_array_equal(ids[:, 0], np.arange(3))


@pytest.mark.slow
def test_reader_sees_consistent_versions_while_another_process_adds(tmp_path):
    _small_index(tmp_path / "idx")
    writer = _start_writer(tmp_path, "commits", str(tmp_path / "idx"), "30", read=False)
    seen = set()
    while writer.poll() is None:
        with SegmentIndex.open(tmp_path / "idx") as reader:
            n = reader.ntotal
            assert n == 100 + 50 * (reader.version - 1)
            _, ids = reader.search(unit_vectors(2, seed=5), 5)
            assert (ids < n).all()
            reader.segments(ids.ravel())  # every hit has its metadata row
            seen.add(reader.version)
    assert writer.returncode == 0
    with SegmentIndex.open(tmp_path / "idx") as reader:
        assert reader.ntotal == 100 + 50 * 30
    assert len(seen) > 1  # the reader really overlapped with the writer


@pytest.mark.slow
def test_reader_is_not_blocked_by_an_open_write_transaction(tmp_path):
    _small_index(tmp_path / "idx")
    writer = _start_writer(tmp_path, "hold", str(tmp_path / "idx"), "3")
    assert writer.stdout.readline().strip() == "holding"
    started = time.monotonic()
    reader = SegmentIndex.open(tmp_path / "idx")
    assert reader.ntotal == 100  # the previous version, at once
    assert time.monotonic() - started < 2.5
    assert writer.stdout.readline().strip() == "done"
    writer.wait()
    assert reader.refresh() and reader.ntotal == 150
    reader.close()


def test_database_is_in_wal_mode(tmp_path):
    _small_index(tmp_path / "idx", n=3)
    db = sqlite3.connect(tmp_path / "idx" / "segments.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
