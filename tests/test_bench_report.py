"""`bench report` from the records alone (no torch, no run): the table in CSV, Markdown and for the terminal,
the detail and cost rows, a failed / pending / unreadable cell in one line each, the figure, and the report
folder replaced in one step."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from dense_retrieval.bench.folder import write_bench, write_cell
from dense_retrieval.bench.report import load_matrix, render_markdown, render_text, write_report

COLUMNS = [
    {"name": "davis", "kind": "davis", "headline": "J&F-Mean"},
    {"name": "voc", "kind": "voc", "headline": "mIoU"},
]


def done(value: float, detail: list[dict], seconds: float = 2.0) -> dict:
    return {
        "status": "done",
        "record": {"run": {"backbone": {"name": "x"}}},
        "headline": {"metric": "m", "value": value},
        "metrics": {"other": value / 2},
        "detail": detail,
        "seconds": seconds,
        "peak_rss_mib": 812.4,
        "units": 3,
        "ranks": [0, 1],
    }


@pytest.fixture()
def bench(tmp_path) -> Path:
    """A bench folder of 4 rows (two of them the epochs of a pretraining run) x 2 columns, every cell state."""
    out = tmp_path / "bench"
    rows = [
        {"label": "mobilenet_v2", "run": None, "epoch": None},
        {"label": "broken", "run": None, "epoch": None},
        {"label": "tiny@ep1", "run": "tiny", "epoch": 1},
        {"label": "tiny@ep2", "run": "tiny", "epoch": 2},
    ]
    out.mkdir()
    write_bench(out, {"spec": "x"}, rows, COLUMNS, "running", 2)
    cells = out / "cells"
    objects = [{"item": "bear_1", "J-Mean": 0.5, "F-Mean": 0.7}]
    write_cell(cells / "davis" / "mobilenet_v2", done(0.6123, objects))
    write_cell(cells / "voc" / "mobilenet_v2", done(0.25, [{"item": "cat", "IoU": 0.5}]))
    failure = {"status": "failed", "record": {}, "seconds": 1.5, "peak_rss_mib": None}
    failure["error"] = "seq: frame 3 unreadable"
    write_cell(cells / "davis" / "broken", failure)
    (cells / "voc" / "broken").mkdir(parents=True)
    (cells / "voc" / "broken" / "cell.json").write_text("{not json")
    write_cell(cells / "davis" / "tiny@ep1", done(0.3, objects))
    write_cell(cells / "davis" / "tiny@ep2", done(0.4, objects))
    write_cell(cells / "voc" / "tiny@ep1", done(0.1, []))  # voc x tiny@ep2: pending (not run yet)
    return out


def rows_of(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_the_table_has_a_row_per_backbone_and_a_column_per_benchmark(bench):
    files = write_report(load_matrix(bench), bench / "report")
    assert rows_of(Path(files["table.csv"])) == [
        ["backbone", "davis J&F-Mean", "voc mIoU"],
        ["mobilenet_v2", "0.6123", "0.2500"],
        ["broken", "failed", "unreadable"],
        ["tiny@ep1", "0.3000", "0.1000"],
        ["tiny@ep2", "0.4000", "pending"],
    ]
    details = rows_of(Path(files["details.csv"]))
    assert ["mobilenet_v2", "davis", "bear_1", "F-Mean", "0.7000"] in details
    assert ["mobilenet_v2", "voc", "(all)", "mIoU", "0.2500"] in details
    assert ["mobilenet_v2", "voc", "cat", "IoU", "0.5000"] in details
    assert not [row for row in details if row[0] == "broken"]
    cells = {(row[0], row[1]): row for row in rows_of(Path(files["cells.csv"]))[1:]}
    assert cells[("mobilenet_v2", "davis")][2:8] == ["done", "J&F-Mean", "0.6123", "2.0000", "812.4000", "3"]
    assert cells[("mobilenet_v2", "davis")][8] == "cells/davis/mobilenet_v2/cell.json"
    assert cells[("broken", "davis")][9] == "seq: frame 3 unreadable"
    assert "not a cell record" in cells[("broken", "voc")][9] and cells[("tiny@ep2", "voc")][2] == "pending"


def test_markdown_and_terminal_show_percent_costs_and_one_line_per_failure(bench):
    matrix = load_matrix(bench)
    markdown = render_markdown(matrix)
    assert "| mobilenet_v2 | 61.2 | 25.0 |" in markdown and "| broken | failed | unreadable |" in markdown
    assert "| mobilenet_v2 x davis | done | 2.0 | 812 | 0,1 | `cells/davis/mobilenet_v2/cell.json` |" in markdown
    failures = markdown.split("## Failures")[1].strip().splitlines()
    assert failures[0] == "- broken x davis: seq: frame 3 unreadable" and len(failures) == 2
    text = render_text(matrix)
    assert text.splitlines()[1].split() == ["mobilenet_v2", "61.2", "25.0"]
    assert "broken x davis: failed: seq: frame 3 unreadable" in text
    assert matrix.counts() == {"done": 5, "failed": 1, "pending": 1, "unreadable": 1}


def test_the_figure_has_bars_and_the_epoch_panel_and_the_report_is_replaced_whole(bench, run_cli):
    first = run_cli("bench", "report", bench, "--json")
    assert first.exit_code == 0, first
    report = first.json()
    assert report["counts"]["done"] == 5 and set(report["report"]) == {
        "table.csv", "table.md", "details.csv", "cells.csv", "report.png",
    }  # fmt: skip
    with Image.open(bench / "report" / "report.png") as picture:
        assert picture.format == "PNG" and picture.height > 600  # two rows of panels: bars, then epochs
    (bench / "report" / "stale.txt").write_text("from an older report")
    again = run_cli("bench", "report", bench, "--out", bench / "report")
    assert again.exit_code == 0, again
    assert "mobilenet_v2" in again.stdout and "report:" in again.stderr
    assert sorted(p.name for p in (bench / "report").iterdir()) == sorted(report["report"])
    assert not [p for p in bench.iterdir() if p.name.startswith(".")]
    elsewhere = run_cli("bench", "report", bench, "--out", bench.parent / "elsewhere")
    assert elsewhere.exit_code == 0 and (bench.parent / "elsewhere" / "table.md").is_file()


def test_a_cell_record_of_another_shape_is_unreadable_not_trusted(bench):
    path = bench / "cells" / "davis" / "tiny@ep1" / "cell.json"
    document = json.loads(path.read_text())
    document["detail"] = [{"item": "x", "J-Mean": "high"}]
    path.write_text(json.dumps(document))
    view = load_matrix(bench).cells[("tiny@ep1", "davis")]
    assert view.status == "unreadable" and "'detail'" in view.error


def test_the_report_command_runs_without_torch(bench, tmp_path):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    code = (
        "import sys; from typer.testing import CliRunner; from dense_retrieval.cli import app; "
        f"r = CliRunner().invoke(app, ['bench', 'report', {str(bench)!r}, '--out', {str(tmp_path / 'r')!r}]); "
        "print(r.exit_code, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert done.stdout.split() == ["0", "False"], done.stderr
    assert (tmp_path / "r" / "report.png").is_file()
