"""`dense-retrieval retrieval eval-voc`: segment retrieval scored by the MaskContrast VOC protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..protocols import MASKCONTRAST
from ..retrieval.config import POOLING_MODES
from . import groups
from .common import BatchSizeOption, DeviceOption, JsonOption, info, print_json, start_output
from .options import (
    BackboneOption,
    CheckpointOption,
    LayerOption,
    OutputStrideOption,
    PreprocessOption,
    StrideModeOption,
    WeightsOption,
    backbone_config,
    make_extractor,
)
from .proposal_options import (
    ClustersOption,
    MinAreaOption,
    ProposalsOption,
    SaliencyOption,
    SaliencyThresholdOption,
    SuperpixelsOption,
    proposal_config,
)


@groups.retrieval.command("eval-voc")
def eval_voc(
    voc_root: Annotated[Path, typer.Option("--voc-root", help="PASCAL VOC 2012 root (or VOCdevkit).")],
    proposals: ProposalsOption = "gt",
    size: Annotated[
        int, typer.Option("--size", min=16, help="Images resized to SIZE x SIZE (reference 512).")
    ] = MASKCONTRAST.voc.size,
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, help="1: nearest neighbour; k: vote of k nearest.")
    ] = MASKCONTRAST.voc.top_k,
    pooling: Annotated[
        str, typer.Option("--pooling", help=f"{' or '.join(POOLING_MODES)} (MaskContrast: upsample).")
    ] = MASKCONTRAST.voc.pooling,
    max_images: Annotated[
        int | None, typer.Option("--max-images", min=1, help="Only the first N images of each split.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report here.")] = None,
    min_area: MinAreaOption = 32,
    clusters: ClustersOption = 5,
    superpixels: SuperpixelsOption = "felzenszwalb",
    saliency: SaliencyOption = None,
    saliency_threshold: SaliencyThresholdOption = 0.5,
    saliency_weights: Annotated[
        str,
        typer.Option(
            "--saliency-weights",
            help="saliency: 'soft' (MaskContrast: each map's values above the threshold weight the pooling) or "
            "'binary' (weight 1 inside the mask).",
            rich_help_panel="Proposals",
        ),
    ] = MASKCONTRAST.voc.saliency_weights,
    backbone: BackboneOption = None,
    weights: WeightsOption = "default",
    checkpoint: CheckpointOption = None,
    layer: LayerOption = None,
    output_stride: OutputStrideOption = None,
    stride_mode: StrideModeOption = MASKCONTRAST.features.stride_mode,
    preprocess: PreprocessOption = MASKCONTRAST.features.preprocess,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 4,
    json_output: JsonOption = False,
) -> None:
    """Segment retrieval mIoU on PASCAL VOC (MaskContrast protocol): train masks form the bank, val masks query.

    Prints the 21-class (background included) and the 7-class mIoU with per-class IoU. The paper's setting
    is a ResNet-50 at output stride 8 (e.g. --checkpoint moco.pth.tar --layer layer4 --output-stride 8
    --stride-mode dilate) with saliency or k-means proposals; the default is the embedded MobileNetV2.
    """
    from ..data.atomic import write_json
    from ..retrieval.voc_protocol import evaluate_voc

    start_output(json_output)
    if out is not None:
        from ..data.outputs import check_output

        folders = ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets")
        check_output(out, [root / sub for root in (voc_root, voc_root / "VOC2012") for sub in folders], "file")
    protocol = MASKCONTRAST.voc.replace(
        size=size, top_k=top_k, pooling=pooling, max_images=max_images, saliency_weights=saliency_weights
    )
    config = proposal_config(
        proposals, min_area, clusters, superpixels, saliency=saliency, saliency_threshold=saliency_threshold
    )
    network = backbone_config(MASKCONTRAST, backbone, weights, checkpoint, layer, output_stride, stride_mode)
    extractor = make_extractor(
        network,
        MASKCONTRAST.features_for(network.name).features(
            resize=f"fixed:{size}x{size}", preprocess=preprocess, device=device, batch_size=batch_size
        ),
    )
    info(f"VOC retrieval: {voc_root}, {proposals} proposals, {size}x{size}, top-{top_k}")
    report = evaluate_voc(voc_root, extractor, config, protocol)
    if out is not None:
        write_json(out, report)
    if json_output:
        print_json(report)
        return
    for key, title in (("classes_21", "21 classes (background included)"), ("classes_7", "7 classes")):
        scores = report[key]
        typer.echo(
            f"{title}: mIoU {100 * scores['miou']:.1f} (over classes present: {100 * scores['miou_present']:.1f})"
        )
        for name, entry in scores["per_class"].items():
            if entry["present"]:
                typer.echo(f"  {name:<12} {100 * entry['iou']:5.1f}")
    bank = report["bank"]
    typer.echo(
        f"bank: {bank['prototypes_21']} prototypes from {bank['images']} images ({bank['skipped_21']} masks without "
        f"a labelled object skipped); queries: {report['queries']['masks']} masks from {report['queries']['images']} "
        f"images; {report['seconds']} s"
    )
    if out is not None:
        typer.echo(f"report: {out}")
