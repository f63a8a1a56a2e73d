"""The demo runs offline on the embedded backbone and writes what it says it writes."""

import json
import os
from pathlib import Path

import pytest

from dense_retrieval.data.images import read_image

pytestmark = [pytest.mark.weights, pytest.mark.slow]


def test_demo_writes_every_stage_and_scores_the_synthetic_set(run_cli, tmp_path):
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out, "--device", "cpu", "--json")
    assert result.exit_code == 0, result
    summary = result.json()
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"
    for stage in ("features", "propagation", "retrieval"):
        for path in summary[stage]["files"]:
            assert (out / stage) in Path(path).parents and os.path.getsize(path) > 0
    assert read_image(out / "features" / "chelsea_pca.png").shape[0] > 200
    assert (out / "propagation" / "results" / "global_results-val.csv").read_text().startswith("J&F-Mean")
    assert (
        summary["propagation"]["global"]["J&F-Mean"] > 0.6
    )  # random weights stay far below (tests/test_cli_propagate.py)
    top_hits = [query["hits"][0]["label"] for query in summary["retrieval"]["queries"]]
    assert top_hits == [query["label"] for query in summary["retrieval"]["queries"]]  # nearest segment, same class

    again = run_cli("demo", "--out", out, "--device", "cpu")  # an earlier demo's folder: recomputed, not refused
    assert again.exit_code == 0 and "J&F" in again.stdout


def test_demo_refuses_a_folder_that_is_not_its_own(run_cli, tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    result = run_cli("demo", "--out", tmp_path)
    assert result.exit_code == 2 and "holds no earlier demo output" in result.stderr
    assert (tmp_path / "thesis.tex").read_text() == "precious" and len(list(tmp_path.iterdir())) == 1
