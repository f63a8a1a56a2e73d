"""`dense-retrieval features`: dense feature maps of images, image folders or videos, written to an .npz."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..data.outputs import check_output
from ..errors import InputError, OutputExistsError
from ..protocols import SEGMENT_INDEX
from . import groups
from .common import BatchSizeOption, DeviceOption, JsonOption, info, print_json, start_output
from .options import (
    BackboneOption,
    CheckpointOption,
    LayerOption,
    OutputStrideOption,
    ResizeOption,
    StrideModeOption,
    WeightsOption,
    backbone_config,
    make_extractor,
)


@groups.root.command("features")
def features(
    inputs: Annotated[list[Path], typer.Argument(help="Images, folders of images, or video files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz file.")],
    backbone: BackboneOption = None,
    weights: WeightsOption = "default",
    checkpoint: CheckpointOption = None,
    layer: LayerOption = None,
    output_stride: OutputStrideOption = None,
    stride_mode: StrideModeOption = SEGMENT_INDEX.features.stride_mode,
    resize: ResizeOption = SEGMENT_INDEX.features.resize,
    l2: Annotated[bool, typer.Option("--l2/--no-l2", help="L2-normalise each feature vector.")] = False,
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or float16 (half the size).")] = "float32",
    batch_size: BatchSizeOption = 4,
    device: DeviceOption = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Extract dense feature maps and write them, with the config that made them, to an .npz file.

    Each image or frame becomes one float [C, h, w] array `features_NNNNNN` (h = ceil(H / stride));
    `names` lists the sources and `metadata` (JSON) the backbone, weights, layer, stride and resize policy.
    Read it back with `dense_retrieval.data.feature_store.read_feature_store`.

    Example: dense-retrieval features photos/ clip.mp4 --out feats.npz --output-stride 8 --l2
    """
    from .. import __version__
    from ..data.feature_store import write_feature_store
    from ..data.sources import open_sources

    start_output(json_output)
    if dtype not in ("float32", "float16"):
        raise InputError(f"--dtype {dtype!r} is not supported", hint="use float32 or float16")
    check_output(out, [*inputs, *([checkpoint] if checkpoint else [])], kind="file")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists", hint="pass --overwrite or choose another --out")
    names, frames = open_sources(inputs)
    protocol = SEGMENT_INDEX
    config = backbone_config(protocol, backbone, weights, checkpoint, layer, output_stride, stride_mode)
    feature_config = protocol.features_for(config.name).features(
        resize=resize, l2_normalize=l2, batch_size=batch_size, device=device
    )
    extractor = make_extractor(config, feature_config)
    info(
        f"features: {len(names)} images/frames with {config.name} {extractor.backbone.config.layer}, "
        f"stride {extractor.stride}"
    )
    start = time.perf_counter()
    metadata = {"tool": f"dense-retrieval {__version__}", **extractor.describe()}
    pairs = extractor.stream(frames, image_of=lambda pair: pair[1], total=len(names))
    count = write_feature_store(out, ((pair[0], maps.single()) for pair, maps in pairs), metadata, dtype=dtype)
    report = {
        "out": str(out),
        "count": count,
        "channels": extractor.channels,
        "stride": extractor.stride,
        "seconds": round(time.perf_counter() - start, 2),
        **extractor.describe(),
    }
    if json_output:
        print_json(report)
    else:
        typer.echo(
            f"wrote {count} feature maps ({extractor.channels} channels, stride {extractor.stride}) "
            f"to {out} in {report['seconds']} s"
        )
