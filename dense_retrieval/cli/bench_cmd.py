"""`dense-retrieval bench run SPEC --out DIR` and `bench report DIR`: many backbones on many benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import groups
from .common import JsonOption, info, note, print_json, start_output

_RUN_HELP = """Run every backbone of SPEC on every benchmark of SPEC, one cell each, and report the table.

SPEC is a TOML file: [[backbone]] entries (weights = "default" | "random:N" | a registry name, checkpoint =
FILE, or pretrain_run = RUN: one row per kept checkpoint of a `pretrain` run) and [benchmark.NAME] tables
(kind = davis | voc, the data root and overrides). Relative paths are relative to SPEC's folder.

DIR receives bench.json, one folder per cell (cells/<benchmark>/<backbone>/: the benchmark's outputs and
cell.json, its record: what made the number, the scores, seconds and peak memory, or why it failed) and
the report (DIR/report: `bench report`). A rerun skips every finished cell whose record is unchanged and
redoes the rest; a killed run resumes where it stopped (a DAVIS cell keeps its finished sequences).

Under torchrun the cells (and a DAVIS cell's sequences) are shared out across the ranks, one device each,
with the numbers one process gives:
torchrun --nproc-per-node 4 -m dense_retrieval bench run bench.toml --out runs/bench

A cell that fails does not stop the others; the command then exits 1 after the report.

\b
Example SPEC:
  [[backbone]]
  weights = "default"                 # the embedded MobileNetV2 (offline)
  [[backbone]]
  arch = "resnet18"
  weights = "random:0"
  [[backbone]]
  pretrain_run = "runs/mine"          # every kept checkpoint: J&F against the epoch in the figure
  [benchmark.davis]
  root = "DAVIS"                      # year = "2017", preset = "crw", temperature = 0.05, ...
  [benchmark.voc]
  root = "VOCdevkit/VOC2012"          # proposals = "gt", size = 512, max_images = 100, ...
"""

_REPORT_HELP = """Write the report of a bench folder: the table (terminal, CSV, Markdown), details, costs, a figure.

REPORT (default DIR/report) receives table.csv (a row per backbone, the headline number per benchmark),
table.md (the same in percent, each cell's seconds, peak memory and record, the failures), details.csv
(per sequence / object / class), cells.csv (one row per cell) and report.png (a bar chart per benchmark;
for pretraining runs, the metric against the epoch). Works on a run still going: cells not finished show
as pending.
"""

SpecArgument = Annotated[Path, typer.Argument(help="The matrix spec (TOML).", show_default=False)]
OutOption = Annotated[Path, typer.Option("--out", help="The bench folder (created; or an earlier bench's).")]


@groups.bench.command("run", help=_RUN_HELP)
def bench_run(
    spec_file: SpecArgument,
    out: OutOption,
    device: Annotated[
        str | None, typer.Option("--device", help="Overrides the spec's [run] device: auto, cpu, cuda.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    from dataclasses import replace

    from ..bench.report import load_matrix, render_text, summary, write_report
    from ..bench.schedule import run_bench
    from ..bench.spec import read_spec
    from ..distributed import session
    from ..errors import DenseRetrievalError

    start_output(json_output)
    spec = read_spec(spec_file)
    if device is not None:
        spec = replace(spec, device=device)
    with session() as ranks:
        if ranks.is_main:
            shape = f"{len(spec.backbones)} backbone(s) x {len(spec.benchmarks)} benchmark(s)"
            info(f"bench: {shape} on {ranks.world} rank(s)")
        run_bench(spec, out, ranks, log=info)
    if not ranks.is_main:
        return  # rank 0 reports; the other ranks print nothing
    matrix = load_matrix(out)
    files = write_report(matrix, out / "report")
    if json_output:
        print_json({**summary(matrix), "report": files})
    else:
        typer.echo(render_text(matrix))
        note(f"report: {files['table.md']} (table.csv, details.csv, cells.csv, report.png beside it)")
    failed = [view for view in matrix.cells.values() if view.status != "done"]
    if failed:
        first = failed[0]
        raise DenseRetrievalError(
            f"{len(failed)} of {len(matrix.cells)} cell(s) have no number ({first.row} x {first.column}: "
            f"{first.error or first.status})",
            hint="fix the cause and rerun: finished cells are kept",
        )


@groups.bench.command("report", help=_REPORT_HELP)
def bench_report(
    folder: Annotated[Path, typer.Argument(help="A bench folder (`bench run --out`).", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", help="The report folder (default: FOLDER/report).")] = None,
    json_output: JsonOption = False,
) -> None:
    from ..bench.folder import BENCH, CELLS
    from ..bench.report import load_matrix, render_text, summary, write_report
    from ..data.outputs import check_output

    start_output(json_output)
    target = out if out is not None else folder / "report"
    check_output(target, [folder / BENCH, folder / CELLS], kind="dir")
    matrix = load_matrix(folder)
    files = write_report(matrix, target)
    if json_output:
        print_json({**summary(matrix), "report": files})
        return
    typer.echo(render_text(matrix))
    note(f"report: {files['table.md']} (table.csv, details.csv, cells.csv, report.png beside it)")
