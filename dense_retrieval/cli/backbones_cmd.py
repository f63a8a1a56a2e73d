"""`dense-retrieval backbones`: the networks, their layers, channels and strides."""

from __future__ import annotations

import typer

from ..backbone.specs import ARCHITECTURES
from . import groups
from .common import JsonOption, print_json, start_output


@groups.root.command("backbones")
def backbones(json_output: JsonOption = False) -> None:
    """List the backbones and the layers features can be taken from.

    The stride is the layer's natural one; --output-stride 8/16 lowers it by stride removal (CRW)
    or dilation (DeepLab). The paper's DAVIS protocol uses resnet50 layer3 (res4) at stride 8.
    """
    start_output(json_output)
    table = {
        name: {
            "default_layer": spec.default_layer,
            "layers": [
                {"name": info.name, "aliases": list(info.aliases), "channels": info.channels, "stride": info.stride}
                for info in spec.layers
            ],
        }
        for name, spec in ARCHITECTURES.items()
    }
    if json_output:
        print_json(table)
        return
    for name, entry in table.items():
        typer.echo(f"{name} (default layer {entry['default_layer']})")
        for layer in entry["layers"]:
            alias = f" = {'/'.join(layer['aliases'])}" if layer["aliases"] else ""
            typer.echo(f"  {layer['name'] + alias:<18} {layer['channels']:>5} channels   stride {layer['stride']}")
