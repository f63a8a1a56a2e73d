"""`dense-retrieval demo`: the toolkit end to end on the embedded backbone, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import DeviceOption, JsonOption, info, print_json, start_output


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Annotated[Path, typer.Option("--out", help="Folder for everything the demo writes.")] = Path(
            "demo-output"
        ),
        device: DeviceOption = "auto",
        json_output: JsonOption = False,
    ) -> None:
        """Show what the toolkit does, with the embedded ImageNet MobileNetV2 and no network.

        Writes into --out: the feature PCA of scikit-image's bundled photos, and a summary.json.
        """
        from ..demo import run_demo

        start_output(json_output)
        info(f"demo: writing into {out}/")
        summary = run_demo(out, device=device)
        if json_output:
            print_json(summary)
            return
        for path in summary["features"]["files"]:
            typer.echo(f"feature PCA     {path}")
        typer.echo(f"done in {summary['seconds']} s; summary in {out / 'summary.json'}")
