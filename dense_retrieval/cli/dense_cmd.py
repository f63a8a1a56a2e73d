"""`dense-retrieval retrieval eval-dense`: dense nearest-neighbour retrieval scored by the Hummingbird protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..protocols import HUMMINGBIRD
from ..retrieval.dense.config import LABEL_DTYPES, MATCHINGS
from . import groups
from .common import BatchSizeOption, DeviceOption, JsonOption, info, note, print_json, start_output
from .options import (
    BackboneOption,
    CheckpointOption,
    LayerOption,
    OutputStrideOption,
    StrideModeOption,
    WeightsOption,
    backbone_config,
    make_extractor,
)

_DENSE = HUMMINGBIRD.dense
_PANEL = "Memory index"
_HELP = """Dense nearest-neighbour retrieval (Balazevic et al. 2023, the Hummingbird protocol as
open-hummingbird-eval reproduces it): a memory of patch features with soft labels is built from the
training split, every patch of the validation split takes the softmax-weighted labels of its nearest memory
patches, and the upsampled label maps are scored by mIoU.

The memory is a FAISS index on disk beside its label store (OUT/memory, or --memory-out), built in shards
that a rerun keeps after a kill, the same way under torchrun; --max-memory chooses its factory (exact Flat
while it fits, IVF otherwise, recall@k against exact search recorded). A later run with the same memory
settings reuses it; --memory reads a kept memory as an input (another validation set, k or temperature).

\b
Layouts (--root): voc: VOC2012/ with SegmentationClassAug/ and ImageSets/Segmentation/trainaug.txt, val.txt
  (or Hummingbird's VOCSegmentation/ with images/, sets/); ade20k: ADEChallengeData2016/; folder:
  ROOT/{train,val}/{images,labels}/ with --num-classes.
ViTs take their last block's patch tokens at 512 (/16, /8) or 504 (/14); CNNs their default layer at stride
16 (MobileNetV2 features.13, ResNet layer3) at 512, or e.g. --layer layer4 --output-stride 16 --stride-mode
dilate. Numbers: mIoU over all classes after Hungarian matching (the published numbers' convention).

\b
Example (a 1/128 split of the data-efficient table, their file list):
  dense-retrieval retrieval eval-dense --dataset voc --root VOCdevkit --out runs/dino-s16 \\
      --backbone vit_small_patch16 --memory-size 102400 \\
      --train-list open-hummingbird-eval/file_sets/voc/1_div_128/trainaug_128_42.txt
"""


def _memory_size(text: str) -> int | None:
    from ..errors import InputError

    if text.strip().lower() == "all":
        return None
    try:
        value = int(float(text))
    except ValueError:
        raise InputError(f"--memory-size {text!r} is not a number", hint="e.g. 102400, 1024e3 or all") from None
    return value


@groups.retrieval.command("eval-dense", help=_HELP)
def eval_dense(
    root: Annotated[Path, typer.Option("--root", help="The dataset folder (layout: see above).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: report.json, memory/, predictions/.")],
    dataset: Annotated[str, typer.Option("--dataset", help="voc, ade20k or folder (layouts above).")] = "voc",
    num_classes: Annotated[
        int | None, typer.Option("--num-classes", min=1, help="Classes of a --dataset folder (labels 0..C-1).")
    ] = None,
    train_split: Annotated[
        str | None, typer.Option("--train-split", help="Memory split (voc: trainaug, ade20k: training).")
    ] = None,
    val_split: Annotated[
        str | None, typer.Option("--val-split", help="Evaluated split (voc: val, ade20k: validation).")
    ] = None,
    train_list: Annotated[
        Path | None, typer.Option("--train-list", help="Only the memory images this id file lists (1/128, ...).")
    ] = None,
    memory_size: Annotated[
        str, typer.Option("--memory-size", help="Memory patches: 102400, 1024000, 10240000 (the paper's), or all.")
    ] = str(_DENSE.memory_size),
    augmentation_epochs: Annotated[
        int, typer.Option("--augmentation-epochs", min=0, help="Augmented passes; 0: one validation-resize pass.")
    ] = _DENSE.augmentation_epochs,
    neighbours: Annotated[int, typer.Option("--neighbours", min=1, help="Memory patches read per query.")] = (
        _DENSE.neighbours
    ),
    temperature: Annotated[float, typer.Option("--temperature", help="Softmax temperature.")] = _DENSE.temperature,
    input_size: Annotated[
        int | None, typer.Option("--input-size", min=16, help="Network input side (default: 512, 504 for /14).")
    ] = None,
    matching: Annotated[str, typer.Option("--matching", help=f"{' or '.join(MATCHINGS)}.")] = _DENSE.matching,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Crops, jitter and sampling noise.")] = _DENSE.seed,
    preprocess: Annotated[
        str,
        typer.Option(
            "--preprocess",
            help="The input recipe: hummingbird (the reproduction's: PIL bilinear, std (0.229, 0.224, 0.255)), "
            "hummingbird-imagenet (std 0.225), or any of `--help` of `features`.",
        ),
    ] = HUMMINGBIRD.features.preprocess,
    label_dtype: Annotated[
        str, typer.Option("--label-dtype", help=f"{' or '.join(LABEL_DTYPES)}: soft labels as stored.")
    ] = _DENSE.label_dtype,
    memory_out: Annotated[
        Path | None, typer.Option("--memory-out", help="Keep the memory here instead of OUT/memory.")
    ] = None,
    memory: Annotated[Path | None, typer.Option("--memory", help="Read this kept memory (no memory build).")] = None,
    save_predictions: Annotated[
        bool, typer.Option("--save-predictions", help="Write OUT/predictions/<id>.png (input size).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Rebuild a memory made with other settings.")] = False,
    factory: Annotated[
        str | None, typer.Option("--factory", help="FAISS factory (default Flat).", rich_help_panel=_PANEL)
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option("--max-memory", help="Budget of the FAISS index; chooses the factory.", rich_help_panel=_PANEL),
    ] = None,
    on_disk: Annotated[
        bool, typer.Option("--on-disk", help="IVF lists memory-mapped from disk.", rich_help_panel=_PANEL)
    ] = False,
    recall_queries: Annotated[
        int,
        typer.Option("--recall-queries", min=0, help="Held-out patches recall is measured on.", rich_help_panel=_PANEL),
    ] = 1000,
    shard_images: Annotated[
        int | None, typer.Option("--shard-images", min=1, help="Memory images per shard.", rich_help_panel=_PANEL)
    ] = None,
    query_batch: Annotated[
        int, typer.Option("--query-batch", min=1, help="Query patches searched at once.", rich_help_panel=_PANEL)
    ] = _DENSE.query_batch,
    backbone: BackboneOption = None,
    weights: WeightsOption = "default",
    checkpoint: CheckpointOption = None,
    layer: LayerOption = None,
    output_stride: OutputStrideOption = None,
    stride_mode: StrideModeOption = HUMMINGBIRD.features.stride_mode,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 8,
    json_output: JsonOption = False,
) -> None:
    from ..data.segmentation_sets import DEFAULT_SPLITS, open_split
    from ..distributed import session
    from ..errors import InputError
    from ..retrieval.dense.evaluate import evaluate_dense
    from ..retrieval.dense.run import check_run_folder, commit_report, default_memory, inputs_of, run_folder
    from ..retrieval.index.stages import IndexOptions, check_factory

    start_output(json_output)
    if memory is not None and memory_out is not None:
        raise InputError("--memory reads a kept memory, --memory-out keeps a new one", hint="give one of them")
    inputs = inputs_of(root, train_list, memory, checkpoint)
    check_run_folder(out, inputs, memory_out)
    splits = DEFAULT_SPLITS.get(dataset, ("train", "val"))
    train = open_split(dataset, root, train_split or splits[0], num_classes, train_list)
    val = open_split(dataset, root, val_split or splits[1], num_classes)
    protocol = _DENSE.replace(
        memory_size=_memory_size(memory_size),
        augmentation_epochs=augmentation_epochs,
        neighbours=neighbours,
        temperature=temperature,
        input_size=input_size,
        matching=matching,
        seed=seed,
        label_dtype=label_dtype,
        query_batch=query_batch,
    )
    options = IndexOptions(factory, max_memory, None, on_disk, recall_queries)
    network = backbone_config(HUMMINGBIRD, backbone, weights, checkpoint, layer, output_stride, stride_mode)
    with session() as ranks:
        features = HUMMINGBIRD.features_for(network.name).features(
            preprocess=preprocess, device=ranks.device(device), batch_size=batch_size
        )
        extractor = make_extractor(network, features)
        protocol.input_for(extractor.stride)  # a bad --input-size or --factory fails before OUT is made
        check_factory(options, extractor.channels)
        with run_folder(out.resolve(), ranks) as folder:
            report = evaluate_dense(
                train,
                val,
                extractor,
                protocol,
                memory if memory is not None else default_memory(folder, memory_out),
                options,
                reuse=memory is not None,
                overwrite=overwrite,
                predictions=folder / "predictions" if save_predictions else None,
                shard_images=shard_images,
                ranks=ranks,
                log=info,
            )
            if report is not None:
                report["out"] = str(folder)
                commit_report(folder, report, info)
    if report is None:  # ranks other than 0 print nothing
        return
    if json_output:
        print_json(report)
        return
    _print_report(report)


def _print_report(report: dict) -> None:
    memory, seconds = report["memory"], report["seconds"]
    for name, entry in report["per_class"].items():
        if entry["present"]:
            typer.echo(f"  {name:<16} {100 * entry['iou']:5.1f}")
    typer.echo(
        f"mIoU {100 * report['miou']:.1f} ({report['matching']} matching, over all "
        f"{len(report['per_class'])} classes; {100 * report['miou_present']:.1f} over the classes present; "
        f"without matching {100 * report['miou_no_matching']:.1f})"
    )
    recall = memory.get("recall")
    recall_text = ""
    if recall:
        k = recall["k"]
        recall_text = f", recall@{k} of held-out patches {recall[f'recall_at_{k}']:.3f}"
    typer.echo(
        f"memory: {memory['patches']} patches x {memory['dim']}, {memory['factory']}"
        f"{' on disk' if memory['on_disk'] else ''}{recall_text}{' (reused)' if memory['reused'] else ''}"
    )
    typer.echo(
        "seconds: "
        + ", ".join(f"{stage} {value}" for stage, value in seconds.items())
        + f"; CPU {report['cpu_seconds']['total']} s"
    )
    note(f"report: {Path(report['out']) / 'report.json'}")
