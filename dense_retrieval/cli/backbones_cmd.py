"""`dense-retrieval backbones`: the networks, their layers, channels and strides."""

from __future__ import annotations

from dataclasses import asdict

import typer

from ..backbone.specs import ARCHITECTURES, ArchitectureSpec
from . import groups
from .common import JsonOption, print_json, start_output


@groups.root.command("backbones")
def backbones(json_output: JsonOption = False) -> None:
    """List the backbones and the layers features can be taken from.

    The stride is the layer's natural one; --output-stride 8/16 lowers it by stride removal (CRW)
    or dilation (DeepLab). The paper's DAVIS protocol uses resnet50 layer3 (res4) at stride 8.
    Vision transformers (built by timm) give patch tokens at stride = patch size from any block
    (blocks.N, after the final norm; 'last' = the default); class and register tokens are dropped.
    """
    start_output(json_output)
    table = {name: _describe(spec) for name, spec in ARCHITECTURES.items()}
    if json_output:
        print_json(table)
        return
    for name, entry in table.items():
        vit = entry.get("vit")
        if vit:
            registers = f", {vit['register_tokens']} registers" if vit["register_tokens"] else ""
            typer.echo(
                f"{name} (ViT /{vit['patch_size']}, {vit['num_heads']} heads{registers}; {vit['release']}; "
                f"default layer {entry['default_layer']}, weights {entry['default_weights']})"
            )
            first, last = entry["layers"][0], entry["layers"][-1]
            span = f"{first['name']} .. {last['name']}"
            typer.echo(f"  {span:<18} {last['channels']:>5} channels   stride {last['stride']}")
            continue
        typer.echo(f"{name} (default layer {entry['default_layer']})")
        for layer in entry["layers"]:
            alias = f" = {'/'.join(layer['aliases'])}" if layer["aliases"] else ""
            typer.echo(f"  {layer['name'] + alias:<18} {layer['channels']:>5} channels   stride {layer['stride']}")


def _describe(spec: ArchitectureSpec) -> dict:
    entry = {
        "family": spec.family,
        "default_layer": spec.default_layer,
        "default_weights": spec.default_weights,
        "layers": [
            {"name": info.name, "aliases": list(info.aliases), "channels": info.channels, "stride": info.stride}
            for info in spec.layers
        ],
    }
    if spec.transformer is not None:
        entry["vit"] = asdict(spec.transformer) | {"timm_model": spec.constructor}
    return entry
