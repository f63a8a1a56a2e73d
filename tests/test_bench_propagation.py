"""tools/bench_propagation.py keeps its figures honest: the record it writes names the input it ran on, and
both trees (the issue's baseline 0021210 and this one) give the same masks. Speed is not checked here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, davis_mini_root

BASELINE = "0021210"


def _baseline_available() -> bool:
    done = subprocess.run(["git", "-C", str(PROJECT_ROOT), "cat-file", "-e", f"{BASELINE}^{{commit}}"])
    return done.returncode == 0


@pytest.mark.slow
def test_bench_propagation_records_its_input_and_the_same_masks_in_both_trees(tmp_path):
    if not _baseline_available():
        pytest.skip(f"the baseline commit {BASELINE} is not in this checkout's history (shallow clone)")
    real = davis_mini_root()
    out = tmp_path / "record.json"
    command = [sys.executable, str(PROJECT_ROOT / "tools" / "bench_propagation.py"), "--frames-per-sequence", "2"]
    command += ["--profile", "none", "--no-jf", "--e2e-threads", "1", "--out", str(out)]
    command += ["--sequences", "car-shadow", "--davis-root", str(real)] if real else []
    env = {key: value for key, value in os.environ.items() if key != "DENSE_RETRIEVAL_DAVIS_MINI"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    inputs = record["inputs"]
    assert inputs["frames"] == 2 and inputs["sizes"] == {"854x480": 2}
    assert inputs["grid"] == {"854x480": "60x107"} and "mobilenet_v2 features.13" in inputs["backbone"]
    if real:
        assert list(inputs["sequences"]) == ["car-shadow"] and str(Path(real).resolve()) in inputs["substitute"]
    else:
        assert inputs["substitute"].startswith("synthetic pair")
    assert (
        record["trees"]["before"]["revision"].startswith(BASELINE) and len(record["trees"]["before"]["revision"]) == 40
    )
    assert record["trees"]["this"]["revision"]
    masks = record["results"]["end_to_end"]["masks"]
    assert masks["frames"] == 2 and masks["pixels"] == 2 * 480 * 854
    assert masks["pixels_differing"] == 0
    assert "input: " in done.stderr and "substitute" in done.stderr
