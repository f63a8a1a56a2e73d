"""`dense-retrieval query`: the segments of an index most similar to a given one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import groups
from .common import BatchSizeOption, DeviceOption, JsonOption, print_json, start_output
from .options import CheckpointOption
from .proposal_options import (
    ClustersOption,
    CocoOption,
    GtKindOption,
    GtRootOption,
    MinAreaOption,
    SaliencyOption,
    SaliencyThresholdOption,
    SuperpixelsOption,
    proposal_config,
)


@groups.root.command("query")
def query(
    index: Annotated[Path, typer.Argument(help="The index directory.")],
    image: Annotated[Path | None, typer.Argument(help="The query image (not needed with --segment-id).")] = None,
    mask: Annotated[
        Path | None, typer.Option("--mask", help="PNG of the query segment (nonzero pixels), image-sized.")
    ] = None,
    proposals: Annotated[
        str | None, typer.Option("--proposals", help="Query with every proposal of IMAGE by this method.")
    ] = None,
    segment_id: Annotated[int | None, typer.Option("--segment-id", help="Query with a stored segment.")] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Hits per query.")] = 10,
    search_params: Annotated[
        str | None, typer.Option("--search-params", help="FAISS search parameters, e.g. nprobe=16 (IVF).")
    ] = None,
    gallery: Annotated[
        Path | None, typer.Option("--gallery", help="Write a PNG of the query and its hits here.")
    ] = None,
    min_area: MinAreaOption = 32,
    clusters: ClustersOption = 5,
    superpixels: SuperpixelsOption = "felzenszwalb",
    gt_root: GtRootOption = None,
    gt_kind: GtKindOption = "class",
    coco: CocoOption = None,
    saliency: SaliencyOption = None,
    saliency_threshold: SaliencyThresholdOption = 0.5,
    checkpoint: CheckpointOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 4,
    json_output: JsonOption = False,
) -> None:
    """Find the K segments of INDEX most like a query segment.

    Give the query as IMAGE plus --mask M.png, as IMAGE plus --proposals METHOD (every proposal
    queries), or as --segment-id N (a segment already in the index). Features are computed with the
    backbone recorded in the index.
    """
    from ..data.images import write_image
    from ..errors import InputError
    from ..retrieval.index import SegmentIndex
    from ..retrieval.pipeline import extractor_for_index, query_mask, query_proposals, query_segment, render_gallery

    start_output(json_output)
    if gallery is not None:
        from ..data.outputs import check_output

        check_output(
            gallery, [p for p in (index, image, mask, coco, saliency, gt_root) if p is not None], "file", "--gallery"
        )
    given = [
        name
        for name, value in (("--mask", mask), ("--proposals", proposals), ("--segment-id", segment_id))
        if value is not None
    ]
    if len(given) != 1:
        raise InputError(
            "give exactly one query: --mask, --proposals or --segment-id"
            + (f" (got {' and '.join(given)})" if given else ""),
            hint="e.g. `dense-retrieval query INDEX photo.jpg --mask segment.png`",
        )
    if segment_id is None and image is None:
        raise InputError(f"{given[0]} needs the query IMAGE", hint="dense-retrieval query INDEX IMAGE ...")
    with SegmentIndex.open(index) as opened:
        if search_params:
            opened.set_search_params(search_params)
        if segment_id is not None:
            results = [query_segment(opened, segment_id, k)]
        else:
            extractor = extractor_for_index(
                opened.config, None if checkpoint is None else str(checkpoint), device, batch_size
            )
            if mask is not None:
                results = [query_mask(opened, extractor, image, mask, k)]
            else:
                config = proposal_config(
                    proposals, min_area, clusters, superpixels, gt_root, gt_kind, coco, saliency, saliency_threshold
                )
                results = query_proposals(opened, extractor, image, config, k)
        document = {"index": str(index), "k": k, "queries": [result.as_dict() for result in results]}
        if gallery is not None:
            write_image(gallery, render_gallery(results))
            document["gallery"] = str(gallery)
    if json_output:
        print_json(document)
        return
    _print_table(document)


def _print_table(document: dict) -> None:
    for number, result in enumerate(document["queries"], start=1):
        typer.echo(f"query {number}: {result['image']} ({result['source']}, {result['area']} px)")
        for rank, hit in enumerate(result["hits"], start=1):
            label = hit["label_name"] or ""
            typer.echo(f"  {rank:>3}  {hit['score']:.4f}  #{hit['segment_id']:<7} {label:<12} {hit['image']}")
    if "gallery" in document:
        typer.echo(f"gallery: {document['gallery']}")
