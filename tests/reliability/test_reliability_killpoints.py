"""kill -9 and Ctrl-C at every commit point of `index add`, `index build --overwrite`, `davis propagate` and
`bench run`, and at the per-video commit of `jhmdb propagate` and `vip propagate`.

Each run is stopped at an exact point (:mod:`tests.reliability.points`, found from outside the package by
the kill-point harness). Then:

- what is on disk is one whole version, old or new, readable, and what the process said matches it
  (exit 0 = the new version is there; 130 = the old one is, and one line says so);
- running the same command again finishes the job and gives exactly the result of a run that was never
  interrupted (no duplicates, no lost segments, byte-identical masks);
- nothing is left behind, inside the output or next to it.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.reliability.harness import error_lines, finish_child, run_inprocess
from tests.reliability.points import (
    ADD_POINTS,
    BENCH_POINTS,
    BUILD_POINTS,
    DAVIS_POINTS,
    JHMDB_POINTS,
    VIP_POINTS,
    start_at_point,
)

pytestmark = pytest.mark.slow

SIGNALS = ("KILL", "INT")
KILLED = 128 + signal.SIGKILL
INTERRUPTED = 130

# which version a kill at each point must leave: the previous one, or the new one
ADD_AFTER_KILL = {"reading-images": "old", "faiss-file-written": "old", "faiss-file-renamed": "old", "committed": "new"}
BUILD_AFTER_KILL = {
    "reading-images": "old",
    "new-index-committing": "old",
    "swapping-in": "old",
    "old-index-removing": "new",
}


def rows(index: Path) -> list[tuple]:
    """What an index holds, as stored: (image, method, mask RLE, label), in id order."""
    db = sqlite3.connect(f"file:{index / 'segments.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT image, method, rle, label FROM segments ORDER BY id").fetchall()
    finally:
        db.close()


def info(index: Path) -> dict:
    outcome = run_inprocess(["index", "info", index, "--json"])
    assert outcome.exit_code == 0, f"the index is not readable after the interruption: {outcome!r}"
    return json.loads(outcome.stdout)


def leftovers(folder: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(prefix))


def check_reported(outcome, sig: str, state: str) -> None:
    """The exit code and the words match what is on disk."""
    if sig == "KILL":
        assert outcome.exit_code == KILLED, outcome
        return
    if state == "new":
        assert outcome.exit_code == 0, f"the new version is in place but the command reported {outcome!r}"
        assert json.loads(outcome.stdout), outcome
    else:
        assert outcome.exit_code == INTERRUPTED, f"the old version is in place but the command reported {outcome!r}"
        lines = error_lines(outcome)
        assert len(lines) == 1 and "interrupted" in lines[0] and outcome.stdout == "", outcome


# ------------------------------------------------------------------------------------------ index add
@pytest.fixture()
def add_scene(data, tmp_path) -> dict:
    extra = tmp_path / "extra"
    extra.mkdir()
    for path in sorted(data.images.iterdir())[:3]:
        shutil.copy(path, extra / f"copy-{path.name}")
    reference = tmp_path / "reference"
    shutil.copytree(data.index, reference)
    outcome = run_inprocess(["index", "add", reference, extra, "--json"])
    assert outcome.exit_code == 0, outcome
    index = tmp_path / "idx"
    shutil.copytree(data.index, index)
    return {"index": index, "extra": extra, "old": rows(data.index), "new": rows(reference)}


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("point", list(ADD_POINTS))
def test_index_add_interrupted(point, sig, add_scene, tmp_path):
    index, extra = add_scene["index"], add_scene["extra"]
    args = ["index", "add", index, extra, "--json"]
    process, hit = start_at_point(args, ADD_POINTS[point], sig, tmp_path)
    outcome = finish_child(process)
    assert hit.exists(), f"the add never reached {point}: {outcome!r}"
    state = "new" if info(index)["segments"] == len(add_scene["new"]) else "old"
    assert rows(index) == add_scene[state]
    if sig == "KILL":
        assert state == ADD_AFTER_KILL[point]
    elif point == "committed":
        assert state == "new"
    check_reported(outcome, sig, state)
    rerun = run_inprocess(args)
    assert rerun.exit_code == 0, rerun
    assert rows(index) == add_scene["new"], "the rerun did not give the uninterrupted result"
    # besides the versions, a built index keeps the trained codec its vectors were encoded with
    stray = [p.name for p in (index / "faiss").iterdir() if not p.name.startswith("index-")]
    versions = [p for p in (index / "faiss").iterdir() if p.name.startswith("index-")]
    assert stray in ([], ["trained.faiss"]) and len(versions) <= 2, sorted((index / "faiss").iterdir())


# ------------------------------------------------------------------------------------------ index build --overwrite
@pytest.fixture()
def build_scene(data, tmp_path) -> dict:
    reference = tmp_path / "reference"
    args = ["index", "build", data.images, "--clusters", "3", "--json"]
    outcome = run_inprocess([*args, "--out", reference])
    assert outcome.exit_code == 0, outcome
    parent = tmp_path / "work"
    parent.mkdir()
    index = parent / "idx"
    shutil.copytree(data.index, index)
    return {"index": index, "args": args, "old": rows(data.index), "new": rows(reference)}


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("point", list(BUILD_POINTS))
def test_index_build_overwrite_interrupted(point, sig, build_scene, tmp_path):
    index = build_scene["index"]
    args = [*build_scene["args"], "--out", index, "--overwrite"]
    process, hit = start_at_point(args, BUILD_POINTS[point], sig, tmp_path)
    outcome = finish_child(process)
    assert hit.exists(), f"the build never reached {point}: {outcome!r}"
    assert (index / "segments.sqlite").is_file(), f"no index at --out after an interruption at {point}"
    info(index)
    state = "new" if rows(index) == build_scene["new"] else "old"
    assert rows(index) == build_scene[state]
    if sig == "KILL":
        assert state == BUILD_AFTER_KILL[point]
    elif point == "old-index-removing":
        assert state == "new"
    check_reported(outcome, sig, state)
    rerun = run_inprocess(args)
    assert rerun.exit_code == 0, rerun
    assert rows(index) == build_scene["new"]
    assert leftovers(index.parent, ".") == [], "temporary or old copies left next to the index"


# ------------------------------------------------------------------------------------------ davis propagate
@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("point", list(DAVIS_POINTS))
def test_davis_propagate_interrupted(point, sig, data, tmp_path):
    results = tmp_path / "res"
    args = ["davis", "propagate", "--davis-root", data.davis, "--out", results]
    process, hit = start_at_point(args, DAVIS_POINTS[point], sig, tmp_path)
    outcome = finish_child(process)
    assert hit.exists(), f"the run never reached {point}: {outcome!r}"
    if sig == "KILL":
        assert outcome.exit_code == KILLED, outcome
    else:
        lines = error_lines(outcome)
        assert outcome.exit_code == INTERRUPTED and outcome.stdout == "", outcome
        assert len(lines) == 1 and "interrupted" in lines[0], outcome
    record = results / "propagation.json"
    listed = json.loads(record.read_text())["sequences"] if record.exists() else {}
    for name in listed:  # every sequence the record lists is complete
        assert sorted(p.name for p in (results / name).iterdir()) == sorted(
            p.name for p in (data.results / name).iterdir()
        )
    rerun = run_inprocess(args)
    assert rerun.exit_code == 0, rerun
    sequences = (data.davis / "ImageSets" / "2017" / "val.txt").read_text().split()
    assert sorted(json.loads(record.read_text())["sequences"]) == sorted(sequences)
    for name in sequences:
        for mask in sorted((data.results / name).iterdir()):
            assert (results / name / mask.name).read_bytes() == mask.read_bytes(), f"{name}/{mask.name} differs"
    assert leftovers(results, ".") == [], "temporary folders left inside --out"
    assert leftovers(tmp_path, ".res") == [], "temporary folders left next to --out"


# ------------------------------------------------------------------------------------------ bench run
@pytest.fixture(scope="module")
def bench_scene(data, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bench-scene")
    spec = root / "bench.toml"
    spec.write_text(
        '[run]\ndevice = "cpu"\n[[backbone]]\nweights = "default"\n[[backbone]]\narch = "resnet18"\n'
        f'weights = "random:0"\n[benchmark.davis]\nroot = "{data.davis}"\n'
        f'[benchmark.voc]\nroot = "{data.voc}"\nsize = 64\n'
    )
    reference = root / "reference"
    outcome = run_inprocess(["bench", "run", spec, "--out", reference, "--json"])
    assert outcome.exit_code == 0, outcome
    return {"spec": spec, "reference": reference}


# cells committed when the run is killed at each point; Ctrl-C lets the commit under way finish first
BENCH_COMMITTED = {"davis-sequence-committing": 0, "second-cell-committing": 1, "last-cell-committing": 3}


def cell_records(out: Path) -> dict[Path, bytes]:
    return {path.relative_to(out): path.read_bytes() for path in (out / "cells").rglob("cell.json")}


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("point", list(BENCH_POINTS))
def test_bench_run_interrupted(point, sig, bench_scene, tmp_path):
    from dense_retrieval.bench.folder import read_cell

    reference, out = bench_scene["reference"], tmp_path / "bench"
    args = ["bench", "run", bench_scene["spec"], "--out", out, "--json"]
    process, hit = start_at_point(args, BENCH_POINTS[point], sig, tmp_path)
    outcome = finish_child(process)
    assert hit.exists(), f"the run never reached {point}: {outcome!r}"
    check_reported(outcome, sig, "old")
    committed = cell_records(out)
    expected = cell_records(reference)
    assert len(committed) == BENCH_COMMITTED[point] + (sig == "INT" and point != "davis-sequence-committing")
    for name in committed:  # every committed cell is whole: its record reads, its number is the uninterrupted one
        record, wanted = read_cell((out / name).parent), json.loads(expected[name])
        assert record["status"] == "done" and record["headline"] == wanted["headline"], name
    rerun = run_inprocess(args)
    assert rerun.exit_code == 0, rerun
    finished = cell_records(out)
    assert all(finished[name] == data for name, data in committed.items()), "a committed cell was recomputed"
    assert sorted(finished) == sorted(expected)
    for name in ("table.csv", "details.csv"):
        assert (out / "report" / name).read_bytes() == (reference / "report" / name).read_bytes(), name
    for mask in sorted(reference.rglob("*.png")):
        if "report" not in mask.parts:
            assert (out / mask.relative_to(reference)).read_bytes() == mask.read_bytes(), mask
    assert not list(out.rglob(".*")), "temporary files or rank commits left in the bench folder"
    assert leftovers(tmp_path, ".bench") == [], "temporary folders left next to --out"


# ------------------------------------------------------------------------------------------ jhmdb / vip propagate
def check_interrupted(outcome, sig: str) -> None:
    if sig == "KILL":
        assert outcome.exit_code == KILLED, outcome
    else:
        lines = error_lines(outcome)
        assert outcome.exit_code == INTERRUPTED and outcome.stdout == "", outcome
        assert len(lines) == 1 and "interrupted" in lines[0], outcome


def same_joints(a: Path, b: Path) -> bool:
    """Two joints.json files hold the same predictions (to their stored 3 decimals)."""
    import numpy as np

    first, second = (json.loads(p.read_text())["joints"] for p in (a, b))
    as_array = [np.array([[p if p is not None else [np.nan, np.nan] for p in f] for f in j]) for j in (first, second)]
    return as_array[0].shape == as_array[1].shape and np.allclose(*as_array, atol=2e-3, equal_nan=True)


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("point", list(JHMDB_POINTS))
def test_jhmdb_propagate_interrupted(point, sig, data, tmp_path):
    results = tmp_path / "res"
    args = ["jhmdb", "propagate", "--jhmdb-root", data.jhmdb, "--out", results]
    process, hit = start_at_point(args, JHMDB_POINTS[point], sig, tmp_path)
    outcome = finish_child(process)
    assert hit.exists(), f"the run never reached {point}: {outcome!r}"
    check_interrupted(outcome, sig)
    record = results / "propagation.json"
    listed = json.loads(record.read_text())["sequences"] if record.exists() else {}
    for name in listed:  # every video the record lists is complete
        assert same_joints(results / name / "joints.json", data.jhmdb_results / name / "joints.json")
    rerun = run_inprocess(args)
    assert rerun.exit_code == 0, rerun
    expected = json.loads((data.jhmdb_results / "propagation.json").read_text())["sequences"]
    assert sorted(json.loads(record.read_text())["sequences"]) == sorted(expected)
    for name in expected:
        assert same_joints(results / name / "joints.json", data.jhmdb_results / name / "joints.json"), name
    assert leftovers(results, ".") == [], "temporary folders left inside --out"
    assert leftovers(tmp_path, ".res") == [], "temporary folders left next to --out"


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("point", list(VIP_POINTS))
def test_vip_propagate_interrupted(point, sig, data, tmp_path):
    results = tmp_path / "res"
    args = ["vip", "propagate", "--vip-root", data.vip, "--out", results]
    process, hit = start_at_point(args, VIP_POINTS[point], sig, tmp_path)
    outcome = finish_child(process)
    assert hit.exists(), f"the run never reached {point}: {outcome!r}"
    check_interrupted(outcome, sig)
    rerun = run_inprocess(args)
    assert rerun.exit_code == 0, rerun
    for name in ("videos1", "videos2"):
        masks = sorted(p.name for p in (data.vip_results / name).glob("*.png"))
        assert sorted(p.name for p in (results / name).glob("*.png")) == masks
        for mask in masks:
            assert (results / name / mask).read_bytes() == (data.vip_results / name / mask).read_bytes(), mask
    assert leftovers(results, ".") == [] and leftovers(tmp_path, ".res") == []
