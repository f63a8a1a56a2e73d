"""`dense-retrieval query`: the segments of an index most similar to a given one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import groups
from .common import BatchSizeOption, DeviceOption, JsonOption, json_default, note, print_json, start_output
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
    queries: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            help='A file of queries, one JSON object per line: {"segment_id": 3} or '
            '{"image": "a.jpg", "mask": "a.png"} (paths relative to the file), optional "k". '
            "Answers are JSON lines on stdout, one per query, in one process.",
        ),
    ] = None,
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
    queries), as --segment-id N (a segment already in the index), or many at once with --queries FILE.
    Features are computed with the backbone recorded in the index; queries by stored segment need none
    (no torch is loaded for them).
    """
    from ..data.images import write_image
    from ..errors import InputError
    from ..retrieval.index import SegmentIndex
    from ..retrieval.queries import query_segment, render_gallery

    start_output(json_output)
    if gallery is not None:
        from ..data.outputs import check_output

        check_output(
            gallery, [p for p in (index, image, mask, coco, saliency, gt_root) if p is not None], "file", "--gallery"
        )
    given = [
        name
        for name, value in (
            ("--mask", mask),
            ("--proposals", proposals),
            ("--segment-id", segment_id),
            ("--queries", queries),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise InputError(
            "give exactly one query: --mask, --proposals, --segment-id or --queries"
            + (f" (got {' and '.join(given)})" if given else ""),
            hint="e.g. `dense-retrieval query INDEX photo.jpg --mask segment.png`",
        )
    if queries is not None:
        if image is not None or gallery is not None:
            raise InputError("--queries takes no IMAGE or --gallery", hint="name images inside the queries file")
        _answer_batch(index, queries, k, search_params, checkpoint, device, batch_size)
        return
    if segment_id is None and image is None:
        raise InputError(f"{given[0]} needs the query IMAGE", hint="dense-retrieval query INDEX IMAGE ...")
    with SegmentIndex.open(index) as opened:
        if search_params:
            opened.set_search_params(search_params)
        if segment_id is not None:
            results = [query_segment(opened, segment_id, k)]
        else:
            from ..retrieval.pipeline import extractor_for_index, query_mask, query_proposals

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


def _answer_batch(
    index: Path,
    queries: Path,
    k: int,
    search_params: str | None,
    checkpoint: Path | None,
    device: str,
    batch_size: int,
) -> None:
    """--queries: one JSON line per query on stdout; failed queries are lines with an error (exit 1)."""
    from ..retrieval.index import SegmentIndex
    from ..retrieval.queries import answer_queries, read_queries

    specs = read_queries(queries)
    failed = 0
    with SegmentIndex.open(index) as opened:
        if search_params:
            opened.set_search_params(search_params)
        extractor = None

        def by_mask(image: str, mask: str, hits: int):
            nonlocal extractor
            from ..retrieval.pipeline import extractor_for_index, query_mask  # torch: only for such queries

            if extractor is None:
                extractor = extractor_for_index(
                    opened.config, None if checkpoint is None else str(checkpoint), device, batch_size
                )
            return query_mask(opened, extractor, image, mask, hits)

        for answer in answer_queries(opened, specs, k, by_mask):
            failed += "error" in answer
            sys.stdout.write(json.dumps(answer, default=json_default) + "\n")
            sys.stdout.flush()
    if failed:
        note(f"{failed} of {len(specs)} queries failed (their lines hold the error)")
        raise typer.Exit(1)


def _print_table(document: dict) -> None:
    for number, result in enumerate(document["queries"], start=1):
        typer.echo(f"query {number}: {result['image']} ({result['source']}, {result['area']} px)")
        for rank, hit in enumerate(result["hits"], start=1):
            label = hit["label_name"] or ""
            typer.echo(f"  {rank:>3}  {hit['score']:.4f}  #{hit['segment_id']:<7} {label:<12} {hit['image']}")
    if "gallery" in document:
        typer.echo(f"gallery: {document['gallery']}")
