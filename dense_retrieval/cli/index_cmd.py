"""`dense-retrieval index build|add|info`: segment indexes (FAISS + SQLite) of image collections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..data.outputs import check_output
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
from .proposal_options import (
    ClustersOption,
    CocoOption,
    GtKindOption,
    GtRootOption,
    MinAreaOption,
    PoolingOption,
    ProposalsOption,
    SaliencyOption,
    SaliencyThresholdOption,
    SuperpixelsOption,
    proposal_config,
)

ImagesArgument = Annotated[list[Path], typer.Argument(help="Image files and/or folders of images.")]
IndexArgument = Annotated[Path, typer.Argument(help="The index directory.")]


@groups.index.command("build")
def build(
    images: ImagesArgument,
    out: Annotated[Path, typer.Option("--out", help="The index directory to create.")],
    proposals: ProposalsOption = "kmeans",
    factory: Annotated[
        str | None,
        typer.Option("--factory", help="FAISS factory string: Flat (exact, the default), IVF4096,SQ8, HNSW32, ..."),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            help="Budget of the FAISS index (e.g. 8G, 512M): the factory is chosen for it (exact Flat while it "
            "fits, then IVF with SQ8, PQ or OPQ+PQ) and its recall@1/@10 measured and recorded.",
        ),
    ] = None,
    on_disk: Annotated[
        bool,
        typer.Option("--on-disk", help="IVF factories: keep the inverted lists on disk, memory-mapped for search."),
    ] = False,
    shard_images: Annotated[
        int | None,
        typer.Option("--shard-images", min=1, help="Images per shard (default: inputs split over the ranks, <= 1000)."),
    ] = None,
    codec_from: Annotated[
        Path | None,
        typer.Option("--codec-from", help="Encode with the trained codec of this index (for `index merge`)."),
    ] = None,
    recall_queries: Annotated[
        int,
        typer.Option("--recall-queries", min=0, help="Held-out segments recall is measured on (approximate indexes)."),
    ] = 1000,
    pooling: PoolingOption = "upsample",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing index at --out.")] = False,
    min_area: MinAreaOption = 32,
    clusters: ClustersOption = 5,
    superpixels: SuperpixelsOption = "felzenszwalb",
    gt_root: GtRootOption = None,
    gt_kind: GtKindOption = "class",
    coco: CocoOption = None,
    saliency: SaliencyOption = None,
    saliency_threshold: SaliencyThresholdOption = 0.5,
    backbone: BackboneOption = None,
    weights: WeightsOption = "default",
    checkpoint: CheckpointOption = None,
    layer: LayerOption = None,
    output_stride: OutputStrideOption = None,
    stride_mode: StrideModeOption = SEGMENT_INDEX.features.stride_mode,
    resize: ResizeOption = SEGMENT_INDEX.features.resize,
    preprocess: PreprocessOption = SEGMENT_INDEX.features.preprocess,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 4,
    json_output: JsonOption = False,
) -> None:
    """Index the segments of IMAGES: propose masks, pool features over them, store vectors and metadata.

    The index appears at --out only when complete; an interrupted build leaves any previous one intact, and
    rerunning it keeps the shards already extracted (in .OUT.build next to --out). Runs unchanged under
    torchrun, one rank per GPU or CPU process, e.g.
    torchrun --nproc-per-node 4 -m dense_retrieval index build photos/ --out idx --max-memory 16G --on-disk
    """
    from ..data.images import collect_images
    from ..distributed import session
    from ..retrieval.build import build_staged
    from ..retrieval.index.assemble import IndexOptions

    start_output(json_output)
    paths = collect_images(images)
    check_output(
        out,
        [*images, *_proposal_inputs(gt_root, coco, saliency, codec_from), *([checkpoint] if checkpoint else [])],
        "dir",
    )
    config = proposal_config(
        proposals, min_area, clusters, superpixels, gt_root, gt_kind, coco, saliency, saliency_threshold
    )
    protocol = SEGMENT_INDEX
    network = backbone_config(protocol, backbone, weights, checkpoint, layer, output_stride, stride_mode)
    with session() as ranks:
        extractor = make_extractor(
            network,
            protocol.features_for(network.name).features(
                resize=resize, preprocess=preprocess, device=ranks.device(device), batch_size=batch_size
            ),
        )
        if ranks.is_main:
            info(f"indexing {len(paths)} images ({proposals} proposals) into {out} with {ranks.world} rank(s)")
        options = IndexOptions(factory, max_memory, codec_from and str(codec_from), on_disk, recall_queries)
        report = build_staged(
            paths, out, extractor, config, pooling, options, overwrite, shard_images, ranks=ranks, log=info
        )
    if report is not None:  # rank 0 reports; the other ranks print nothing
        _print_report(report, json_output)


@groups.index.command("add")
def add(
    index: IndexArgument,
    images: ImagesArgument,
    proposals: ProposalsOption = "kmeans",
    min_area: MinAreaOption = 32,
    clusters: ClustersOption = 5,
    superpixels: SuperpixelsOption = "felzenszwalb",
    gt_root: GtRootOption = None,
    gt_kind: GtKindOption = "class",
    coco: CocoOption = None,
    saliency: SaliencyOption = None,
    saliency_threshold: SaliencyThresholdOption = 0.5,
    backbone: BackboneOption = None,
    weights: Annotated[
        str | None, typer.Option("--weights", help="Weights (default: those the index was built with).")
    ] = None,
    checkpoint: CheckpointOption = None,
    layer: LayerOption = None,
    output_stride: OutputStrideOption = None,
    stride_mode: Annotated[str | None, typer.Option("--stride-mode", help="remove or dilate.")] = None,
    resize: Annotated[str | None, typer.Option("--resize", help="native, short:N or fixed:HxW.")] = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 4,
    allow_duplicates: Annotated[
        bool,
        typer.Option(
            "--allow-duplicates", help="Index images again that the index holds already (same path and content)."
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Add the segments of IMAGES to an existing index (one commit; readers keep working meanwhile).

    The backbone is the one recorded in the index; options that differ from it are refused.
    """
    from ..data.images import collect_images
    from ..retrieval.index import SegmentIndex, index_config
    from ..retrieval.pipeline import add_images, extractor_for_index

    start_output(json_output)
    paths = collect_images(images)
    check_output(
        index,
        [*images, *_proposal_inputs(gt_root, coco, saliency), *([checkpoint] if checkpoint else [])],
        "dir",
        "index",
    )
    config = proposal_config(
        proposals, min_area, clusters, superpixels, gt_root, gt_kind, coco, saliency, saliency_threshold
    )
    with SegmentIndex.open(index, readonly=False) as opened:
        overrides = {
            "name": backbone,
            "weights": weights,
            "layer": layer,
            "output_stride": output_stride,
            "stride_mode": stride_mode,
            "resize": resize,
        }
        extractor = extractor_for_index(opened.config, checkpoint, device, batch_size, overrides)
        opened.check_config(index_config(extractor.describe(), opened.config["pooling"], extractor.channels))
        info(f"adding {len(paths)} images ({proposals} proposals) to {index} ({opened.ntotal} segments)")
        report = add_images(
            opened, paths, extractor, config, pooling=opened.config["pooling"], allow_duplicates=allow_duplicates
        )
    _print_report(report, json_output)


@groups.index.command("info")
def index_info(index: IndexArgument, json_output: JsonOption = False) -> None:
    """What an index holds and the configuration (backbone, weights, layer, stride, pooling) that made it."""
    from ..retrieval.index import SegmentIndex

    start_output(json_output)
    with SegmentIndex.open(index) as opened:
        report = opened.info()
    if json_output:
        print_json(report)
        return
    from ..records import RunRecord

    record = RunRecord.from_dict(report["config"], f"index {index} (config)")
    backbone, features = record.backbone, record.features
    typer.echo(f"index       {report['path']}")
    typer.echo(f"segments    {report['segments']} from {report['images']} images")
    for line in proposal_table(report["proposals"]):
        typer.echo(line)
    where = "on disk, memory-mapped" if report["on_disk"] else "in memory"
    typer.echo(
        f"faiss       {report['factory']} (dim {report['dim']}, version {report['version']}, "
        f"{report['index_bytes']} bytes {where}, search {report['search_params'] or 'default'})"
    )
    if report.get("recall"):
        recall = report["recall"]
        typer.echo(
            f"recall      @1 {recall['recall_at_1']:.3f}, @10 {recall['recall_at_10']:.3f} "
            f"on {recall['queries']} held-out segments"
        )
    typer.echo(
        f"backbone    {backbone['name']} {backbone['layer']} stride {backbone['stride']} ({backbone['stride_mode']}), "
        f"weights {backbone['weights']}"
    )
    typer.echo(
        f"features    resize {features['resize']}, preprocessing {features['preprocess'].get('name')}, "
        f"pooling {record.settings.get('pooling')}"
    )


def proposal_table(proposals: dict[str, dict]) -> list[str]:
    """One line per proposal method of an index, its counts in aligned columns whatever the method's name.

    Args:
        proposals: ``{method: {"segments": n, "images": m}}`` as ``SegmentIndex.info()`` gives it.
    """
    if not proposals:
        return []
    name = max(len(method) for method in proposals)
    segments = max(len(str(counts["segments"])) for counts in proposals.values())
    images = max(len(str(counts["images"])) for counts in proposals.values())
    return [
        f"  {method:<{name}}  {counts['segments']:>{segments}} segments  {counts['images']:>{images}} images"
        for method, counts in proposals.items()
    ]


def _proposal_inputs(*paths: Path | None) -> list[Path]:
    return [path for path in paths if path is not None]


@groups.index.command("merge")
def merge(
    indexes: Annotated[list[Path], typer.Argument(help="Two or more index directories, in the order of their ids.")],
    out: Annotated[Path, typer.Option("--out", help="The merged index directory to create.")],
    on_disk: Annotated[
        bool | None,
        typer.Option("--on-disk/--in-memory", help="Where the merged IVF lists live (default: on disk if any is)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing index at --out.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Join indexes built separately with the same configuration into one (ids: the first's, then the next's ...).

    Refused, with every differing key named, when the recorded configurations differ (backbone, weights, layer,
    stride, resize, pooling, dimension, factory) or, for trained factories, the trained codecs do: build the
    later parts with `index build ... --codec-from FIRST` so they are encoded like the first.
    """
    from ..retrieval.index.merge import merge_indexes

    start_output(json_output)
    check_output(out, indexes, "dir")
    info(f"merging {len(indexes)} indexes into {out}")
    report = merge_indexes(indexes, out, on_disk=on_disk, overwrite=overwrite)
    if json_output:
        print_json(report)
        return
    where = "on disk, memory-mapped" if report["on_disk"] else "in memory"
    typer.echo(f"index     {report['index']}: {report['segments']} segments from {len(report['sources'])} indexes")
    typer.echo(f"faiss     {report['factory']}, {report['index_bytes']} bytes ({where})")


def _print_report(report: dict, json_output: bool) -> None:
    if json_output:
        print_json(report)
        return
    stats = report["proposal_stats"]
    typer.echo(f"index     {report['index']}")
    typer.echo(f"added     {report['added']} segments from {report['images']} images ({report['segments']} in all)")
    if report.get("skipped"):
        typer.echo(
            f"skipped   {report['skipped']} images already in the index (same path and content; "
            "--allow-duplicates indexes them again)"
        )
    typer.echo(
        f"dropped   {stats['dropped_empty']} empty and {stats['dropped_small']} small masks; "
        f"{stats['images_without_masks']} images without masks"
    )
    if "factory" in report:
        where = "on disk, memory-mapped" if report.get("on_disk") else "in memory"
        typer.echo(f"faiss     {report['factory']}, {report['index_bytes']} bytes ({where})")
    if report.get("choice"):
        choice = report["choice"]
        estimated = choice["estimated_bytes"]
        typer.echo(f"budget    {choice['budget_bytes']} bytes: chose {choice['factory']} (estimated {estimated})")
    if report.get("recall"):
        recall = report["recall"]
        at_k = recall[f"recall_at_{recall['k']}"]
        typer.echo(
            f"recall    @1 {recall['recall_at_1']:.3f}, @{recall['k']} {at_k:.3f} on {recall['queries']} "
            f"held-out segments ({recall['search_params'] or 'default search'})"
        )
