"""`dense-retrieval vip propagate | evaluate`: VIP human-part propagation scored with mIoU (CRW's protocol)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ..metrics.conventions import PartConventions
from ..protocols import CRW_VIP
from . import groups
from .common import BatchSizeOption, DeviceOption, JsonOption, info, note, print_json, start_output
from .options import (
    BackboneOption,
    CheckpointOption,
    LayerOption,
    OutputStrideOption,
    PreprocessOption,
    StrideModeOption,
    WeightsOption,
)
from .propagation_options import (
    BACKBONE_RULE,
    ContextOption,
    L2Option,
    RadiusOption,
    TemperatureOption,
    TopkOption,
    benchmark_setup,
    propagation_config,
    propagation_extractor,
    propagation_preprocess,
)

RootOption = Annotated[Path, typer.Option("--vip-root", help="VIP_Fine folder with Images/, Category_ids/, lists/.")]
ListOption = Annotated[
    Path | None, typer.Option("--list", help="Video list, one name per line (default: VIP-ROOT/lists/val_videos.txt).")
]
VideosOption = Annotated[
    str | None, typer.Option("--videos", help="Comma-separated video names (default: every video of the list).")
]

_PROPAGATE_HELP = f"""Propagate each video's first annotated part map through its frames (CRW's VIP protocol).

The first annotated frame's part ids (Category_ids, 0..19) become one-hot label channels on the
feature grid; the propagation carries them through every later frame, and every annotated frame's
parts are read out as CRW does (soft labels upsampled bilinearly to the network input, argmax,
nearest-resized to the frame).

\b
Writes OUT/<video>/<frame>.png for every annotated frame (part ids, indexed PNG in VIP's palette, the
PASCAL VOC colour map; the first annotated frame is its annotation passed through the grid, as CRW
writes it), OUT/<video>/overlay.jpg|mp4 with --overlay strip|video, and OUT/propagation.json. Videos
already complete with the same configuration are skipped (rerun to resume); a folder made with
another configuration is refused unless --overwrite.

\b
Protocol (--preset crw = crw-vip): frames stretched to {CRW_VIP.features.resize[6:]} (bilinear), res4 at
stride 8, L2; first frame + {CRW_VIP.propagation.context} previous, top-{CRW_VIP.propagation.topk},
T={CRW_VIP.propagation.temperature}, radius {CRW_VIP.propagation.radius:g}.

{BACKBONE_RULE}

\b
Example:
  dense-retrieval vip propagate --vip-root VIP_Fine --out runs/vip-mnv2
  dense-retrieval vip evaluate  --vip-root VIP_Fine --results runs/vip-mnv2
"""


@groups.vip.command("propagate", help=_PROPAGATE_HELP)
def propagate(
    vip_root: RootOption,
    out: Annotated[Path, typer.Option("--out", help="Results folder (created).")],
    video_list: ListOption = None,
    videos: VideosOption = None,
    checkpoint: CheckpointOption = None,
    backbone: BackboneOption = None,
    weights: WeightsOption = "default",
    layer: LayerOption = None,
    output_stride: OutputStrideOption = None,
    stride_mode: StrideModeOption = CRW_VIP.features.stride_mode,
    resize: Annotated[
        str | None, typer.Option("--resize", help="Network input (default: the protocol's, fixed:560x560).")
    ] = None,
    preprocess: PreprocessOption = None,
    l2: L2Option = CRW_VIP.features.l2_normalize,
    preset_name: Annotated[
        str | None,
        typer.Option("--preset", help="crw (CRW's VIP settings, the default), or another propagation protocol."),
    ] = None,
    temperature: TemperatureOption = None,
    topk: TopkOption = None,
    radius: RadiusOption = None,
    context: ContextOption = None,
    overlay: Annotated[
        str | None, typer.Option("--overlay", help="strip (about 8 annotated frames, JPEG) or video (MP4) per video.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace results of another configuration.")] = False,
    batch_size: BatchSizeOption = 4,
    device: DeviceOption = "auto",
    json_output: JsonOption = False,
) -> None:
    start_output(json_output)
    from ..data.vip import VipDataset
    from ..errors import InputError
    from ..vos.results_run import select_names
    from ..vos.vip_run import OVERLAYS, propagate_vip

    protocol, architecture = benchmark_setup("vip", preset_name, backbone, checkpoint)
    config = propagation_config(protocol, temperature, topk, radius, context)
    preprocess = propagation_preprocess(protocol, architecture, preprocess)
    dataset = VipDataset(vip_root, video_list)
    names = select_names(dataset.videos, _names(videos), f"the VIP list {dataset.list_path}")
    if overlay is not None and overlay not in OVERLAYS:
        raise InputError(f"unknown overlay {overlay!r}", hint=f"use one of {', '.join(OVERLAYS)}")
    extractor = propagation_extractor(  # the network is loaded once the inputs are known to be good
        protocol, architecture, weights, checkpoint, layer, output_stride, stride_mode, resize, l2, batch_size, device,
        preprocess,
    )  # fmt: skip
    described = extractor.backbone.describe()
    info(
        f"vip propagate: {protocol.name} protocol, {described['name']} {described['layer']} stride "
        f"{described['stride']}, weights {described['weights']}, {preprocess} preprocessing; writing into {out}/"
    )
    summary = propagate_vip(dataset, out, extractor, config, names, overwrite, overlay, log=info)
    if json_output:
        print_json(summary)
        return
    done = sum(1 for s in summary["sequences"].values() if s["status"] == "done")
    rate = f", {summary['frames_per_second']} frames/s" if summary["frames_per_second"] else ""
    typer.echo(
        f"{done} video(s) propagated, {len(summary['sequences']) - done} already complete{rate}; parts in {out}/ "
        f"(score: dense-retrieval vip evaluate --vip-root {vip_root} --results {out})"
    )


_EVALUATE_HELP = """Score a folder of predicted part maps with mIoU, as CRW's eval_vip.py does.

\b
RESULTS/<video>/<frame>.png for every annotated frame (part ids 0..19, indexed or grayscale PNG;
another size than the annotation is resized to it, nearest). Writes into --output (default: the
results folder) parts_results-<list>.csv (IoU per class and the mean, fractions) and
parts_report-<list>.json (conventions, per video, mIoU, pixel accuracy).

\b
What the numbers mean: one confusion matrix over every scored frame of every video (annotation
pixels of 255 left out); IoU = TP / (TP + FP + FN) per class; mIoU is the mean over the classes
present in the annotations or the predictions (a class absent from both is left out, as CRW's
nanmean). The first annotated frame is scored, as in CRW's script (--skip-first leaves it out).
CRW (ResNet-18) publishes 38.6 mIoU on VIP's validation videos.

\b
Example:
  dense-retrieval vip evaluate --vip-root VIP_Fine --results runs/vip-mnv2
"""


@groups.vip.command("evaluate", help=_EVALUATE_HELP)
def evaluate(
    vip_root: RootOption,
    results: Annotated[Path, typer.Option("--results", help="Folder with <video>/<frame>.png predictions.")],
    video_list: ListOption = None,
    videos: VideosOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Folder for the CSV and the report. Default: --results.")
    ] = None,
    skip_first: Annotated[
        bool, typer.Option("--skip-first", help="Leave the first annotated frame out (CRW scores it).")
    ] = False,
    no_overwrite: Annotated[
        bool, typer.Option("--no-overwrite", help="Refuse (exit 2) if the score files already exist.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    start_output(json_output)
    from ..data.vip import VipDataset
    from ..vos.vip_eval import run_vip_evaluation

    dataset = VipDataset(vip_root, video_list)
    conventions = PartConventions(skip_first=skip_first)
    evaluation, paths = run_vip_evaluation(
        dataset, results, output, conventions, overwrite=not no_overwrite, videos=_names(videos)
    )
    if json_output:
        print_json(evaluation.report(paths))
        return
    _, rows = evaluation.table()
    width = max(len(row[0]) for row in rows)
    for name, iou, pixels in rows:
        typer.echo(f"{name.ljust(width)}  {'-' if math.isnan(iou) else f'{100 * iou:.1f}':>6}  {pixels:>12}")
    frames = sum(v["frames_scored"] for v in evaluation.videos)
    note(
        f"mIoU {100 * evaluation.miou:.1f} (percent), pixel accuracy {100 * evaluation.pixel_accuracy:.1f}, over "
        f"{frames} frame(s) of {len(evaluation.videos)} video(s); wrote {paths['csv']}, {paths['report'].name}"
    )


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None
