"""`dense-retrieval video propagate`: follow first-frame objects through any video or frame folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError, OutputExistsError
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

_VIDEO_OVERLAY = (".mp4",)
_IMAGE_OVERLAY = (".png", ".jpg", ".jpeg")
_STRIP_FRAMES = 8

_HELP = f"""Propagate a first-frame mask through a video file or a folder of numbered frames.

Writes OUT/<frame>.png for every frame (indexed PNGs, DAVIS palette, the mask's object ids) and
OUT/propagation.json (protocol, backbone, weights). --overlay adds a picture to look at: an .mp4
of every --every-th frame with the objects coloured in, or a .png/.jpg strip of every --every-th
frame (default: about {_STRIP_FRAMES} frames). Nothing is left half-written on error.

The mask: an indexed or grayscale PNG of the first frame at the frame size, objects 1, 2, ... on
background 0 (255 = void, ignored); a mask holding only 0 and 255 is one object.

{BACKBONE_RULE}

\b
Example:
  dense-retrieval video propagate clip.mp4 --mask clip_first.png --out clip_masks --overlay clip_strip.png
"""


@groups.video.command("propagate", help=_HELP)
def propagate(
    source: Annotated[Path, typer.Argument(help="A video file (MP4, AVI, ...) or a folder of numbered frames.")],
    mask: Annotated[Path, typer.Option("--mask", help="First-frame label PNG (objects 1, 2, ... or 0/255).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the per-frame masks (created).")],
    overlay: Annotated[
        Path | None, typer.Option("--overlay", help="Also write overlay.mp4 (video) or strip.png/.jpg (image strip).")
    ] = None,
    every: Annotated[
        int | None,
        typer.Option(
            "--every", min=1, help="Frames of the overlay: every N-th (default: all for .mp4, ~8 for a strip)."
        ),
    ] = None,
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
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out folder / --overlay file.")
    ] = False,
    batch_size: BatchSizeOption = 4,
    device: DeviceOption = "auto",
    json_output: JsonOption = False,
) -> None:
    start_output(json_output)
    import numpy as np

    from ..backbone.preprocessing import get_preprocessing
    from ..data.masks import read_label_png
    from ..data.video import open_video
    from ..vos.frames import check_first_mask
    from ..vos.video_run import write_propagation

    protocol, architecture = propagation_setup(preset_name, backbone, checkpoint)
    config = propagation_config(protocol, temperature, topk, radius, context)
    preprocess = propagation_preprocess(protocol, architecture, preprocess)
    if overlay is not None and overlay.suffix.lower() not in _VIDEO_OVERLAY + _IMAGE_OVERLAY:
        raise InputError(f"--overlay {overlay} must end in .mp4, .png or .jpg", hint="e.g. --overlay overlay.mp4")
    from ..data.outputs import check_output

    check_output(out, [source, mask], "dir")
    if overlay is not None:
        check_output(overlay, [source, mask, out], "file", "--overlay")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(f"{out} already exists and is not empty", hint="choose a new --out or pass --overwrite")
    if overlay is not None and overlay.exists() and not overwrite:
        raise OutputExistsError(f"{overlay} already exists", hint="choose another --overlay or pass --overwrite")
    video = open_video(source, get_preprocessing(preprocess).decode)
    first = read_label_png(mask)
    if set(np.unique(first).tolist()) == {0, 255}:
        first = (first == 255).astype(np.uint8)  # a 0/255 mask is one object
    num_labels = check_first_mask(first, video.info.size, f"mask {mask}")
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
        device,
        preprocess,
    )
    described = extractor.backbone.describe()
    info(
        f"video propagate: {len(video)} frames of {video.info.size[1]}x{video.info.size[0]}, {num_labels - 1} "
        f"object(s); {protocol.name} protocol, {described['name']} {described['layer']} stride {described['stride']}"
    )
    start = time.perf_counter()
    report = write_propagation(video, first, num_labels, extractor, config, out, overlay, every, _STRIP_FRAMES)
    report["seconds"] = round(time.perf_counter() - start, 2)
    report["frames_per_second"] = round(report["frames"] / max(report["seconds"], 1e-9), 3)
    if json_output:
        print_json(report)
        return
    typer.echo(
        f"wrote {report['frames']} masks to {out}/ ({report['frames_per_second']} frames/s)"
        + (f"; overlay {overlay}" if overlay else "")
    )
