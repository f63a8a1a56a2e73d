"""Indexes past one process: shards joined into one index, on-disk lists, the memory-budget chooser, merges.

Real FAISS indexes and SQLite files throughout; shards are written with the build's own ShardWriter from
synthetic clustered vectors, so no backbone is needed (tests/test_distributed.py runs the whole
build under torchrun on images).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest

from dense_retrieval.backbone.preprocessing import get_preprocessing
from dense_retrieval.errors import ConfigMismatchError, InputError
from dense_retrieval.retrieval.index import SegmentIndex, index_config
from dense_retrieval.retrieval.index.assemble import IndexOptions, index_from_shards
from dense_retrieval.retrieval.index.chooser import (
    candidates,
    choose_factory,
    estimate_bytes,
    nlist_for,
    parse_size,
)
from dense_retrieval.retrieval.index.merge import merge_indexes
from dense_retrieval.retrieval.index.recall import leave_out, recall_at
from dense_retrieval.retrieval.index.shards import ShardWriter, Staging
from dense_retrieval.retrieval.index.storage import TRAINED_NAME
from dense_retrieval.retrieval.segments import SegmentRecord

DIM = 32
BACKBONE = {
    "name": "toy",
    "layer": "x",
    "weights": "w",
    "output_stride": 8,
    "stride_mode": "remove",
    "channels": DIM,
    "stride": 8,
}
FEATURES = {
    "resize": "native",
    "preprocess": get_preprocessing("pil-bicubic").record(),
    "l2_normalize": False,
    "batch_size": 4,
}
CONFIG = index_config({"backbone": BACKBONE, "features": FEATURES}, "upsample", DIM)


def clustered(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(40, dim))
    x = centres[rng.integers(40, size=n)] + 0.35 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def rle_records(start: int, n: int) -> list[SegmentRecord]:
    rle = {"size": [4, 4], "counts": "04L0"}  # a 2x2 square: valid COCO RLE
    return [
        SegmentRecord(image=f"/images/{(start + i) // 4:05d}.jpg", method="kmeans", rle=rle, label=start + i)
        for i in range(n)
    ]


def write_shards(out: Path, vectors: np.ndarray, sizes: list[int], name: str = "vectors") -> tuple[Staging, list]:
    """Shards of ``vectors`` with the given sizes, as the extraction stage writes them (label = global id)."""
    staging = Staging(out, {"test": name, "sizes": sizes})
    staging.prepare()
    shards, start = [], 0
    for number, size in enumerate(sizes):
        writer = ShardWriter(staging.path, number, vectors.shape[1])
        for begin in range(start, start + size, 97):  # several appends per shard, like images
            stop = min(begin + 97, start + size)
            writer.add(vectors[begin:stop], rle_records(begin, stop - begin))
        shards.append(writer.finish({"images": [start, start + size], "proposal_stats": {}}))
        start += size
    return staging, shards


def build(tmp: Path, name: str, vectors: np.ndarray, sizes: list[int], **options) -> tuple[Path, dict]:
    out = tmp / name
    staging, shards = write_shards(out, vectors, sizes, name)
    report = index_from_shards(staging, shards, out, CONFIG, IndexOptions(**options))
    staging.remove()
    return out, report


def lists_of(index: faiss.Index) -> list[tuple[np.ndarray, np.ndarray]]:
    lists = faiss.extract_index_ivf(index).invlists
    out = []
    for number in range(lists.nlist):
        n = lists.list_size(number)
        ids = faiss.rev_swig_ptr(lists.get_ids(number), n).copy() if n else np.zeros(0, np.int64)
        codes = faiss.rev_swig_ptr(lists.get_codes(number), n * lists.code_size).copy() if n else np.zeros(0, np.uint8)
        out.append((ids, codes))
    return out


# ----------------------------------------------------------------------------------------- the chooser
def test_parse_size():
    assert parse_size("8G") == 8 << 30 and parse_size("512M") == 512 << 20 and parse_size("1.5GiB") == 3 << 29
    assert parse_size("2tb") == 2 << 40 and parse_size("1000") == 1000 and parse_size(4096) == 4096
    for bad in ("lots", "-1G", "0", "8X"):
        with pytest.raises(InputError, match="memory size"):
            parse_size(bad)


def test_rule_picks_flat_then_sq8_then_pq_then_opq_as_the_budget_shrinks():
    n, dim = 1_000_000, 2048
    assert nlist_for(n) == 4096 and nlist_for(100_000) == 1024 and nlist_for(10**7) == 16384
    assert nlist_for(10**10) == 65536 and nlist_for(100) == 0  # capped; too few vectors for lists
    assert choose_factory(n, dim, "9G").factory == "Flat"  # 8.19 GB of float32
    assert choose_factory(n, dim, "4G").factory == "IVF4096,SQ8"
    assert choose_factory(n, dim, "1G").factory == "IVF4096,PQ256np"  # 8 dims per sub-quantizer: no rotation
    small = choose_factory(n, dim, "120M")
    assert small.factory == "OPQ64_512,IVF4096,PQ64np" and small.search_params == "nprobe=64"
    sizes = [estimate_bytes(f, n, dim) for f in candidates(n, dim)]
    assert sizes == sorted(sizes, reverse=True)  # candidates go from best (largest) to smallest
    for budget in ("9G", "4G", "1G", "120M", "60M"):
        choice = choose_factory(n, dim, budget)
        assert choice.estimated_bytes <= parse_size(budget) and choice.n == n
    with pytest.raises(InputError, match=r"no index of 1000000 vectors .* smallest choice, OPQ8_64,IVF4096,PQ8np"):
        choose_factory(n, dim, "10M")


@pytest.mark.parametrize(
    "factory",
    ["Flat", "IVF16,Flat", "IVF16,SQ8", "IVF16,PQ8np", pytest.param("OPQ4_16,IVF16,PQ4np", marks=pytest.mark.slow)],
)
def test_size_estimate_bounds_the_written_index(factory, tmp_path):
    x = clustered(3000)
    index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    index.train(x)
    index.add(x)
    faiss.write_index(index, str(tmp_path / "i.faiss"))
    written = (tmp_path / "i.faiss").stat().st_size
    estimate = estimate_bytes(factory, len(x), DIM)
    assert written <= estimate <= written + (1 << 17)  # an upper bound, and a tight one


# ----------------------------------------------------------------------------------------- joining shards
@pytest.mark.parametrize("on_disk", [False, True])
def test_index_from_unequal_shards_equals_one_sequential_build(tmp_path, on_disk):
    # Unequal sizes (one empty) catch FAISS's shift_ids offset bug; the join must not depend on it.
    vectors = clustered(2300)
    out, report = build(tmp_path, "sharded", vectors, [700, 1100, 0, 500], factory="IVF16,SQ8", on_disk=on_disk)
    with SegmentIndex.open(out) as index:
        assert index.ntotal == 2300 and index.on_disk is on_disk and index.factory == "IVF16,SQ8"
        assert index.info()["search_params"] == "nprobe=8"
        sequential = faiss.read_index(str(out / "faiss" / TRAINED_NAME))
        sequential.add(vectors)  # one process, every vector in order
        for (ids, codes), (ids_ref, codes_ref) in zip(lists_of(index.faiss_index), lists_of(sequential), strict=True):
            np.testing.assert_array_equal(ids, ids_ref)
            np.testing.assert_array_equal(codes, codes_ref)
        sequential.nprobe = 8
        _, ids = index.search(vectors[::50], 10)
        np.testing.assert_array_equal(ids, sequential.search(vectors[::50], 10)[1])
        labels = [segment.label for segment in index.segments(ids[:, 0])]
        assert labels == ids[:, 0].tolist()  # each row's id is its global position
    assert report["recall"]["queries"] == 230 and 0.8 <= report["recall"]["recall_at_1"] <= 1.0
    assert sorted(p.name for p in (out / "faiss").iterdir()) == sorted(
        ["index-000001.faiss", TRAINED_NAME] + (["index-000001.ivfdata"] if on_disk else [])
    )


def test_flat_from_shards_holds_the_exact_vectors(tmp_path):
    vectors = clustered(900)
    out, report = build(tmp_path, "flat", vectors, [400, 500])
    assert report["recall"] is None and report["factory"] == "Flat"
    with SegmentIndex.open(out) as index:
        np.testing.assert_array_equal(index.faiss_index.reconstruct_n(0, 900), vectors)


def test_on_disk_index_is_mapped_searched_and_added_to(tmp_path):
    vectors = clustered(2000)
    out, _ = build(tmp_path, "disk", vectors[:1500], [800, 700], factory="IVF16,Flat", on_disk=True)
    header = out / "faiss" / "index-000001.faiss"
    assert (out / "faiss" / "index-000001.ivfdata").stat().st_size == 1500 * (DIM * 4 + 8)
    assert header.stat().st_size < 20_000  # the header holds the quantizer and list offsets only
    with SegmentIndex.open(out, readonly=False) as index:
        ids = index.add(vectors[1500:], rle_records(1500, 500), CONFIG)
        np.testing.assert_array_equal(ids, np.arange(1500, 2000))
    assert sorted(p.name for p in (out / "faiss").iterdir() if p.name.startswith("index-")) == [
        "index-000001.faiss",
        "index-000001.ivfdata",
        "index-000002.faiss",
        "index-000002.ivfdata",
    ]
    with SegmentIndex.open(out) as index:
        assert index.ntotal == 2000 and index.version == 2
        _, found = index.search(vectors, 1, params="nprobe=16")  # every list: exact for IVF-Flat
        np.testing.assert_array_equal(found[:, 0], np.arange(2000))
        assert index.segments([1999])[0].label == 1999


# ----------------------------------------------------------------------------------------- --max-memory
def test_budget_choice_and_recall_are_recorded(tmp_path):
    vectors = clustered(4000)
    flat_bytes = 4000 * DIM * 4
    out, report = build(tmp_path, "budget", vectors, [2000, 2000], max_memory=flat_bytes // 2)
    choice = report["choice"]
    assert choice["factory"] == "IVF64,SQ8" and choice["within_budget"]
    assert report["index_bytes"] <= choice["budget_bytes"] == flat_bytes // 2
    with SegmentIndex.open(out) as index:
        info = index.info()
    assert info["choice"] == choice and info["recall"] == report["recall"]
    assert info["recall"]["queries"] == 400 and info["recall"]["recall_at_1"] >= 0.8
    assert info["recall"]["recall_at_10"] >= 0.8 and info["search_params"] == choice["search_params"]
    out, report = build(tmp_path, "roomy", vectors, [4000], max_memory="1G")
    assert report["factory"] == "Flat" and report["recall"]["recall_at_1"] == 1.0 == report["recall"]["recall_at_10"]


def test_options_exclude_each_other_and_on_disk_needs_an_inverted_file():
    with pytest.raises(InputError, match="exclude each other"):
        IndexOptions(factory="Flat", max_memory="1G")
    with pytest.raises(InputError, match="memory size"):
        IndexOptions(max_memory="a lot")
    for factory in (None, "Flat", "HNSW32"):
        with pytest.raises(InputError, match="needs an IVF factory"):
            IndexOptions(factory=factory, on_disk=True)
    IndexOptions(max_memory="1G", on_disk=True)  # the chooser then picks inverted files only


def test_on_disk_budget_choices_are_inverted_files():
    assert choose_factory(10**6, 2048, "1T", on_disk=True).factory == "IVF4096,Flat"  # exact vectors, in lists
    assert choose_factory(10**6, 2048, "3G", on_disk=True).factory == "IVF4096,SQ8"
    with pytest.raises(InputError, match="too few for an inverted file"):
        choose_factory(100, 64, "1G", on_disk=True)


def test_recall_leaves_the_query_itself_out():
    found = np.array([[7, 1, 2, 3], [5, 9, 8, 4]])
    np.testing.assert_array_equal(leave_out(found, np.array([7, 8]), 3), [[1, 2, 3], [5, 9, 4]])
    result = recall_at(np.array([[1, 2, 3], [5, 9, 4]]), np.array([[1, 3, 6], [9, 5, 4]]))
    assert result == {"recall_at_1": 0.5, "recall_at_3": round((2 / 3 + 1) / 2, 4)}


# ----------------------------------------------------------------------------------------- index merge
def test_merge_joins_indexes_encoded_with_one_codec(tmp_path):
    vectors = clustered(3000)
    first, _ = build(tmp_path, "a", vectors[:1800], [1000, 800], factory="IVF16,SQ8", on_disk=True)
    second, _ = build(tmp_path, "b", vectors[1800:], [1200], codec_from=str(first))
    whole, _ = build(tmp_path, "whole", vectors, [3000], codec_from=str(first))
    report = merge_indexes([first, second], tmp_path / "merged")
    assert report["segments"] == 3000 and report["on_disk"]  # on disk because the first one is
    with SegmentIndex.open(tmp_path / "merged") as merged, SegmentIndex.open(whole) as reference:
        assert merged.ntotal == 3000 and merged.on_disk
        pairs = zip(lists_of(merged.faiss_index), lists_of(reference.faiss_index), strict=True)
        for (ids, codes), (ids_ref, codes_ref) in pairs:
            np.testing.assert_array_equal(ids, ids_ref)
            np.testing.assert_array_equal(codes, codes_ref)
        _, ids = merged.search(vectors[::100], 5)
        np.testing.assert_array_equal(ids, reference.search(vectors[::100], 5)[1])
        assert [s.label for s in merged.segments([0, 1799, 1800, 2999])] == [0, 1799, 1800 - 1800, 1199]


def test_merge_refuses_other_configurations_naming_every_key(tmp_path):
    vectors = clustered(1200)
    first, _ = build(tmp_path, "a", vectors[:600], [600], factory="IVF8,SQ8")
    retrained, _ = build(tmp_path, "b", vectors[600:], [600], factory="IVF8,SQ8")
    with pytest.raises(ConfigMismatchError, match=r"differ in codec") as error:
        merge_indexes([first, retrained], tmp_path / "m1")
    assert "--codec-from" in str(error.value)
    flat, _ = build(tmp_path, "flat", vectors[600:], [600])
    db = sqlite3.connect(flat / "segments.sqlite")
    config = {**CONFIG, "pooling": "downsample", "backbone": {**BACKBONE, "weights": "other"}}
    db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config),))
    db.commit()
    db.close()
    with pytest.raises(ConfigMismatchError) as error:
        merge_indexes([first, flat], tmp_path / "m2")
    message = str(error.value)
    for key in ("config.backbone.weights", "config.pooling", "factory", "codec"):
        assert key in message
    assert not (tmp_path / "m1").exists() and not (tmp_path / "m2").exists()
    with pytest.raises(InputError, match="at least two"):
        merge_indexes([first], tmp_path / "m3")


# ----------------------------------------------------------------------------------------- GPUs
def test_without_gpus_search_stays_on_the_cpu_index():
    from dense_retrieval.retrieval.index.gpu import gpu_count, on_gpus

    index = faiss.IndexFlatIP(DIM)
    if gpu_count() == 0:
        assert on_gpus(index) is index


@pytest.mark.gpu
def test_search_is_sharded_over_the_gpus(tmp_path):
    from dense_retrieval.retrieval.index.gpu import gpu_count, on_gpus

    if gpu_count() == 0:
        pytest.skip("FAISS sees no GPU (faiss-cpu, or no CUDA device)")
    vectors = clustered(5000)
    out, _ = build(tmp_path, "gpu", vectors, [2500, 2500], factory="IVF16,Flat", on_disk=True)
    with SegmentIndex.open(out) as index:
        moved = on_gpus(index.faiss_index)
        assert moved is not index.faiss_index  # a GPU index (sharded when there are several GPUs)
        faiss.extract_index_ivf(index.faiss_index).nprobe = 16
        faiss.GpuParameterSpace().set_index_parameter(moved, "nprobe", 16)
        _, expected = index.faiss_index.search(vectors[:100], 5)
        _, found = moved.search(vectors[:100], 5)
    assert (found[:, 0] == expected[:, 0]).mean() > 0.99  # exact (all lists), up to float ties


def test_merge_command_reports_and_refuses_in_one_line(tmp_path, run_cli):
    vectors = clustered(1500)
    first, _ = build(tmp_path, "a", vectors[:700], [700], factory="IVF8,SQ8")
    second, _ = build(tmp_path, "b", vectors[700:], [800], codec_from=str(first))
    merged = run_cli("index", "merge", first, second, "--out", tmp_path / "c", "--on-disk", "--json")
    assert merged.exit_code == 0, merged
    assert merged.json()["segments"] == 1500 and merged.json()["on_disk"]
    info = run_cli("index", "info", tmp_path / "c", "--json").json()
    assert info["on_disk"] and info["build"]["merged_from"][1] == {"index": str(second), "segments": 800}
    other, _ = build(tmp_path, "other", vectors[:300], [300], factory="IVF8,SQ8")
    refused = run_cli("index", "merge", first, other, "--out", tmp_path / "d")
    error = refused.stderr.splitlines()[-1]  # a log line, then the error in one line
    assert refused.exit_code == 2 and error.startswith("error: ") and "differ in codec" in error
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_on_disk_indexes_open_search_and_merge_from_read_only_folders(tmp_path):
    # read-only media: the on-disk lists are mapped read-only, SQLite opens immutable, nothing is written there
    import subprocess
    import sys

    from tests.reliability.harness import can_drop_capabilities, drop_root_write_capabilities, make_read_only

    if not can_drop_capabilities():
        pytest.skip("cannot make a folder read-only for this user")
    vectors = clustered(1500)
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    first, _ = build(shelf, "a", vectors[:700], [400, 300], factory="IVF8,Flat", on_disk=True)
    second, _ = build(shelf, "b", vectors[700:], [800], codec_from=str(first), on_disk=True)
    np.save(tmp_path / "queries.npy", vectors[:50])
    before = sorted((p.relative_to(shelf), p.stat().st_size) for p in shelf.rglob("*"))
    make_read_only(shelf)
    script = f"""
import numpy as np
from dense_retrieval.retrieval.index import SegmentIndex
from dense_retrieval.retrieval.index.merge import merge_indexes
with SegmentIndex.open({str(first)!r}) as index:
    _, ids = index.search(np.load({str(tmp_path / "queries.npy")!r}), 1, params="nprobe=8")
    assert index.on_disk and (ids[:, 0] == np.arange(50)).all(), ids[:, 0]
report = merge_indexes([{str(first)!r}, {str(second)!r}], {str(tmp_path / "merged")!r})
assert report["segments"] == 1500 and report["on_disk"], report
"""
    try:
        child = subprocess.run(
            [sys.executable, "-c", script],
            preexec_fn=drop_root_write_capabilities,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    finally:
        for path in [shelf, *shelf.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert child.returncode == 0, child.stderr[-2000:]
    assert sorted((p.relative_to(shelf), p.stat().st_size) for p in shelf.rglob("*")) == before
    with SegmentIndex.open(tmp_path / "merged") as merged:
        _, found = merged.search(vectors, 1, params="nprobe=8")  # every list: exact for IVF-Flat
        np.testing.assert_array_equal(found[:, 0], np.arange(1500))
