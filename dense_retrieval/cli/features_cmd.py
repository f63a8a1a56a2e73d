"""`dense-retrieval features`: dense feature maps of images, image folders or videos, written to an .npz."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..data.outputs import check_output, remove_owned
from ..errors import InputError, OutputExistsError
from ..protocols import SEGMENT_INDEX
from . import groups
from .common import BatchSizeOption, DeviceOption, JsonOption, info, print_json, start_output
from .options import (
    BackboneOption,
    CheckpointOption,
    LayerOption,
    OutputStrideOption,
    PreprocessOption,
    ResizeOption,
    StrideModeOption,
    WeightsOption,
    backbone_config,
    make_extractor,
)

if TYPE_CHECKING:
    import torch

    from ..distributed import Ranks


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
    preprocess: PreprocessOption = SEGMENT_INDEX.features.preprocess,
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

    Under torchrun (torchrun --nproc-per-node N -m dense_retrieval features ...) each rank extracts an equal
    contiguous share of the images/frames into a part next to --out (kept for a rerun), and rank 0 joins the
    parts into --out: the same arrays, names and metadata as one process writes.
    """
    from .. import __version__
    from ..backbone.preprocessing import get_preprocessing
    from ..data.feature_store import write_feature_store
    from ..data.sources import open_sources
    from ..distributed import session

    start_output(json_output)
    if dtype not in ("float32", "float16"):
        raise InputError(f"--dtype {dtype!r} is not supported", hint="use float32 or float16")
    check_output(out, [*inputs, *([checkpoint] if checkpoint else [])], kind="file")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists", hint="pass --overwrite or choose another --out")
    decoder = get_preprocessing(preprocess).decode
    names, _ = open_sources(inputs, decoder=decoder)
    protocol = SEGMENT_INDEX
    config = backbone_config(protocol, backbone, weights, checkpoint, layer, output_stride, stride_mode)
    with session() as ranks:
        feature_config = protocol.features_for(config.name).features(
            resize=resize, preprocess=preprocess, l2_normalize=l2, batch_size=batch_size, device=ranks.device(device)
        )
        extractor = make_extractor(config, feature_config)
        if ranks.is_main:
            info(
                f"features: {len(names)} images/frames with {config.name} {extractor.backbone.config.layer}, "
                f"stride {extractor.stride}, {ranks.world} rank(s)"
            )
        start = time.perf_counter()
        metadata = {"tool": f"dense-retrieval {__version__}", **extractor.describe()}
        share = -(-len(names) // ranks.world)
        first, last = ranks.rank * share, min(len(names), (ranks.rank + 1) * share)
        _, frames = open_sources(inputs, first, last, decoder)
        pairs = extractor.stream(frames, image_of=lambda pair: pair[1], total=last - first)
        stream = ((pair[0], maps.single()) for pair, maps in pairs)
        if ranks.world == 1:
            count = write_feature_store(out, stream, metadata, dtype=dtype)
        else:
            count = _write_share(out, names[first:last], stream, metadata, dtype, ranks)
    if count is None:
        return
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


def _write_share(
    out: Path, names: list[str], stream: Iterator[tuple[str, torch.Tensor]], metadata: dict, dtype: str, ranks: Ranks
) -> int | None:
    """Under torchrun: this rank's part (kept if a previous run finished it), then rank 0 joins them all."""
    import json

    from ..data.feature_store import join_feature_stores, read_feature_store, write_feature_store
    from ..errors import DenseRetrievalError
    from ..records import identity

    parts = out.parent / f".{out.name}.parts"
    part = parts / f"part-{ranks.rank:05d}-of-{ranks.world:05d}.npz"
    parts.mkdir(parents=True, exist_ok=True)
    try:
        stored = read_feature_store(part)
        done = stored.names == names and identity(stored.metadata) == identity(
            json.loads(json.dumps({**metadata, "dtype": dtype}, default=str))
        )
    except (DenseRetrievalError, OSError, ValueError):  # no part yet, or a damaged one: extract
        done = False
    if not done:
        write_feature_store(part, stream, metadata, dtype=dtype)
    ranks.barrier()
    if not ranks.is_main:
        return None
    count = join_feature_stores([parts / f"part-{r:05d}-of-{ranks.world:05d}.npz" for r in range(ranks.world)], out)
    remove_owned(parts, out.parent)
    return count
