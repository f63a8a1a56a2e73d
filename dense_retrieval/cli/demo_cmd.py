"""`dense-retrieval demo`: the toolkit end to end on the embedded backbone, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import groups
from .common import DeviceOption, JsonOption, info, print_json, start_output

DEFAULT_OUT = Path("demo-output")


@groups.root.command("demo")
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for everything the demo writes (new, empty or an earlier demo's).")
    ] = DEFAULT_OUT,
    device: DeviceOption = "auto",
    json_output: JsonOption = False,
) -> None:
    """Show what the toolkit does, with the embedded ImageNet MobileNetV2 and no network (about a minute).

    \b
    Writes into --out:
      features/     bundled photos beside the PCA of their dense features
      propagation/  a synthetic DAVIS set, masks propagated from the first frame (CRW protocol),
                    J&F scores (official CSVs), strips of frames with masks, a J&F chart
      retrieval/    a segment index of photos + a synthetic VOC set, a query, its gallery.png
      summary.json  what was done, with the scores
    """
    from ..data.outputs import check_output
    from ..demo.run import run_demo

    start_output(json_output)
    check_output(out, [], "dir")
    info(f"demo: writing into {out}/")
    summary = run_demo(out, device=device)
    if json_output:
        print_json(summary)
        return
    _print_summary(summary, out)


def _print_summary(summary: dict, out: Path) -> None:
    features, propagation, retrieval = summary["features"], summary["propagation"], summary["retrieval"]
    typer.echo(f"features     feature PCA of {', '.join(features['photos'])}  ->  {out / 'features'}/")
    scores = propagation["global"]
    typer.echo(
        f"propagation  synthetic DAVIS, CRW protocol: J&F {scores['J&F-Mean']:.3f} "
        f"(J {scores['J-Mean']:.3f}, F {scores['F-Mean']:.3f}) at {propagation['frames_per_second']} frames/s"
    )
    width = max(map(len, propagation["per_object"]), default=0)
    for name, row in propagation["per_object"].items():
        typer.echo(f"               {name:<{width}}  J {row['J']:.3f}  F {row['F']:.3f}")
    typer.echo(f"               masks, strips, J&F chart  ->  {out / 'propagation'}/")
    typer.echo(f"retrieval    {retrieval['segments']} segments indexed; query hits (label, score):")
    for query in retrieval["queries"]:
        hits = ", ".join(f"{hit['label']} {hit['score']:.2f}" for hit in query["hits"][:4])
        typer.echo(f"               {query['label']:<12} -> {hits}")
    typer.echo(f"               gallery  ->  {out / 'retrieval' / 'gallery.png'}")
    typer.echo(f"done in {summary['seconds']} s; everything is listed in {out / 'summary.json'}")
