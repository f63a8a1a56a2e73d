"""`dense-retrieval davis evaluate`: J&F of a results folder, as the official DAVIS evaluation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ..metrics.conventions import GLOBAL_COLUMNS, JFConventions
from . import groups
from .common import JsonOption, note, print_json, start_output

_HELP = """Score a folder of predicted masks with the DAVIS J&F measures (semi-supervised task).

Gives the numbers of the official evaluation (davisvideochallenge/davis2017-evaluation) on the
same masks, several times faster, and writes the same files into --output (default: the results
folder): global_results-<set>.csv, per-sequence_results-<set>.csv (values %.3f, one row per
object such as bike-packing_1) and evaluation_report-<set>.json (what was scored and how). Scores
are always recomputed; existing files are replaced unless --no-overwrite.

\b
The results folder holds one PNG per annotated frame:  RESULTS/<sequence>/<frame>.png,
named like the annotation (00001.png ...), same size, object ids as in the first-frame
annotation (indexed PNG; an RGB PNG only if every colour is exactly a DAVIS palette colour;
DAVIS-2016: 0/255 or 0/1).

\b
What the numbers mean (all in [0, 1], higher is better except Decay):
  J  region similarity: IoU of predicted and annotated object, per object per frame.
  F  boundary accuracy: F-measure of contour pixels matched within ceil(0.008 x image
     diagonal) pixels (8 px at 854x480).
  -Mean    average over the scored frames of an object, then over all objects of the set.
  -Recall  fraction of frames scoring above 0.5.
  -Decay   first quarter of the sequence minus last quarter (how much the score drops).
  J&F-Mean (J-Mean + F-Mean) / 2, the headline number.

\b
Conventions (the official ones): objects are the ids 1..K of the first-frame annotation and an
object missing from a result is an empty prediction; the first and last frame are not scored;
an object absent from both annotation and result scores J = F = 1; annotation pixels labelled
255 (void) count as background unless --ignore-void.

\b
Example:
  dense-retrieval davis evaluate --davis-root DAVIS --results out/davis --year 2017 --set val
"""


@groups.davis.command("evaluate", help=_HELP)
def evaluate(
    davis_root: Annotated[
        Path, typer.Option("--davis-root", help="DAVIS folder with JPEGImages/, Annotations/, ImageSets/.")
    ],
    results: Annotated[Path, typer.Option("--results", help="Folder with <sequence>/<frame>.png result masks.")],
    split: Annotated[str, typer.Option("--set", help="ImageSets file to score: ImageSets/<year>/<set>.txt.")] = "val",
    year: Annotated[
        str, typer.Option("--year", help="2017: indexed multi-object annotations; 2016: one 0/255 object.")
    ] = "2017",
    processes: Annotated[
        int | None,
        typer.Option("--processes", min=1, help="Worker processes (1: in this process). Default: all cores."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Folder for the CSV files and the report. Default: --results."),
    ] = None,
    no_overwrite: Annotated[
        bool, typer.Option("--no-overwrite", help="Refuse (exit 2) if the score files already exist.")
    ] = False,
    bound_th: Annotated[
        float,
        typer.Option("--bound-th", help="Boundary tolerance: fraction of the diagonal (<1) or pixels (>=1)."),
    ] = JFConventions.bound_th,
    keep_first_last: Annotated[
        bool,
        typer.Option("--keep-first-last", help="Also score the first and last frame (not the official protocol)."),
    ] = False,
    ignore_void: Annotated[
        bool, typer.Option("--ignore-void", help="Leave annotation pixels labelled 255 out of J and F.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    start_output(json_output)
    if year not in ("2016", "2017"):
        raise typer.BadParameter(f"{year!r} is not a DAVIS year; use 2016 or 2017", param_hint="--year")
    if not (bound_th > 0 and math.isfinite(bound_th)):
        raise typer.BadParameter(f"{bound_th} must be a positive number", param_hint="--bound-th")
    _check_outputs(davis_root, results, output, year, split)
    from ..vos.davis_eval import run_davis_evaluation

    conventions = JFConventions(
        skip_first_and_last=not keep_first_last,
        bound_th=bound_th,
        void="ignore" if ignore_void else "background",
    )
    evaluation, paths = run_davis_evaluation(
        davis_root,
        results,
        output,
        year,
        split,
        conventions=conventions,
        processes=processes,
        overwrite=not no_overwrite,
    )
    if json_output:
        print_json(evaluation.report(paths))
        return
    _print_table(f"Global results for {split}", list(GLOBAL_COLUMNS), [list(evaluation.global_scores.values())])
    typer.echo("")
    _print_table(f"Per sequence results for {split}", ["Sequence", "J-Mean", "F-Mean"], evaluation.per_object_table())
    counts = f"{evaluation.frames_scored} frames, {len(evaluation.objects)} objects"
    note(
        f"scored {counts} in {len(evaluation.sequences)} sequences in {evaluation.seconds:.2f} s"
        f" ({evaluation.processes} process(es)); wrote {paths['global_csv']},"
        f" {paths['per_sequence_csv'].name}, {paths['report'].name}"
    )


def _check_outputs(davis_root: Path, results: Path, output: Path | None, year: str, split: str) -> None:
    """The score files never land in or over what is scored: the annotations, the frames, the result masks."""
    from ..data.davis import DavisDataset
    from ..data.davis_results import output_paths
    from ..data.outputs import check_output

    dataset = DavisDataset(davis_root, year=year, split=split)
    inputs = [davis_root / "Annotations", davis_root / "JPEGImages", *(results / name for name in dataset.sequences)]
    for path in output_paths(output if output is not None else results, split).values():
        check_output(path, inputs, "file", "--output")


def _print_table(title: str, header: list[str], rows: list) -> None:
    """A right-aligned table like the official tool prints (values %.3f)."""
    cells = [[value if isinstance(value, str) else f"{value:.3f}" for value in row] for row in rows]
    widths = [max(len(header[i]), *(len(row[i]) for row in cells)) for i in range(len(header))]
    typer.echo(f"{'-' * 10} {title} {'-' * 10}")
    typer.echo("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
