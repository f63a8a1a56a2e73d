"""`dense-retrieval davis propagate`: DAVIS results by label propagation (CRW protocol by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..protocols import CRW
from . import groups
from .common import BatchSizeOption, DeviceOption, JsonOption, info, print_json, start_output
from .options import (
    BackboneOption,
    CheckpointOption,
    LayerOption,
    OutputStrideOption,
    PreprocessOption,
    ProtocolResizeOption,
    StrideModeOption,
    WeightsOption,
)
from .propagation_options import (
    BACKBONE_RULE,
    ContextOption,
    L2Option,
    PresetOption,
    RadiusOption,
    TemperatureOption,
    TopkOption,
    propagation_config,
    propagation_extractor,
    propagation_preprocess,
    propagation_setup,
)

_HELP = f"""Propagate each sequence's first-frame annotation through its frames and write the masks.

Writes OUT/<sequence>/<frame>.png for every frame at annotation size (2017: indexed PNGs with the
DAVIS palette; 2016: 0/255), ready for `dense-retrieval davis evaluate --results OUT`, and
OUT/propagation.json recording the protocol, backbone, weights and feature settings. Sequences
already complete with the same configuration are skipped (rerun to resume an interrupted run); a
folder made with another configuration is refused unless --overwrite.

Under torchrun each rank propagates its share of the sequences into the one OUT (a folder every
rank can reach), with the masks one process would write, e.g.
torchrun --nproc-per-node 4 -m dense_retrieval davis propagate --davis-root DAVIS --out results/r50

{BACKBONE_RULE}

\b
Example (the paper's protocol with its released weights):
  dense-retrieval davis propagate --davis-root DAVIS --out results/ours-800 \\
      --checkpoint ours-coco-800ep.pth.tar --preset crw
"""


@groups.davis.command("propagate", help=_HELP)
def propagate(
    davis_root: Annotated[Path, typer.Option("--davis-root", help="DAVIS folder with JPEGImages/, Annotations/.")],
    out: Annotated[Path, typer.Option("--out", help="Results folder (created).")],
    checkpoint: CheckpointOption = None,
    backbone: BackboneOption = None,
    weights: WeightsOption = "default",
    layer: LayerOption = None,
    output_stride: OutputStrideOption = None,
    stride_mode: StrideModeOption = CRW.features.stride_mode,
    resize: ProtocolResizeOption = None,
    preprocess: PreprocessOption = None,
    l2: L2Option = CRW.features.l2_normalize,
    preset_name: PresetOption = None,
    temperature: TemperatureOption = None,
    topk: TopkOption = None,
    radius: RadiusOption = None,
    context: ContextOption = None,
    split: Annotated[str, typer.Option("--set", help="ImageSets/<year>/<set>.txt to run.")] = "val",
    year: Annotated[str, typer.Option("--year", help="2017 (multi-object) or 2016 (one 0/255 object).")] = "2017",
    resolution: Annotated[str, typer.Option("--resolution", help="480p or Full-Resolution.")] = "480p",
    sequences: Annotated[
        str | None, typer.Option("--sequences", help="Comma-separated sequence names (default: the whole set).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace results made with another configuration.")
    ] = False,
    batch_size: BatchSizeOption = 4,
    device: DeviceOption = "auto",
    json_output: JsonOption = False,
) -> None:
    start_output(json_output)
    from ..data.davis import DavisDataset
    from ..distributed import session
    from ..vos.davis_run import propagate_davis

    protocol, architecture = propagation_setup(preset_name, backbone, checkpoint)
    config = propagation_config(protocol, temperature, topk, radius, context)
    preprocess = propagation_preprocess(protocol, architecture, preprocess)
    dataset = DavisDataset(davis_root, year=year, split=split, resolution=resolution)
    names = [name.strip() for name in sequences.split(",") if name.strip()] if sequences else None
    with session() as ranks:
        extractor = propagation_extractor(
            protocol,
            architecture,
            weights,
            checkpoint,
            layer,
            output_stride,
            stride_mode,
            resize,
            l2,
            batch_size,
            ranks.device(device),
            preprocess,
        )
        described = extractor.backbone.describe()
        info(
            f"davis propagate: {protocol.name} protocol, {described['name']} {described['layer']} stride "
            f"{described['stride']}, weights {described['weights']}, {preprocess} preprocessing; writing into "
            f"{out}/ with {ranks.world} rank(s)"
        )
        summary = propagate_davis(dataset, out, extractor, config, names, overwrite=overwrite, log=info, ranks=ranks)
    if not ranks.is_main:
        return  # rank 0 reports; the other ranks print nothing
    if json_output:
        print_json(summary)
        return
    done = sum(1 for s in summary["sequences"].values() if s["status"] == "done")
    skipped = len(summary["sequences"]) - done
    rate = f", {summary['frames_per_second']} frames/s" if summary["frames_per_second"] else ""
    typer.echo(
        f"{done} sequence(s) propagated, {skipped} already complete{rate}; masks in {out}/ "
        f"(score: dense-retrieval davis evaluate --davis-root {davis_root} --results {out} --year {year} --set {split})"
    )
