"""Segment retrieval: index images' segments, query by image + mask or by proposals (features needed).

Queries by stored segment, batches of queries and galleries are in :mod:`.queries` (torch-free).

The road (docs/architecture.md): images -> dense features -> mask proposals -> pooled, L2-normalised
segment vectors (:mod:`.pooling`) -> :class:`~.index.SegmentIndex` -> hits ranked by cosine similarity.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbone.config import BackboneConfig, FeatureConfig
from ..backbone.features import FeatureExtractor
from ..backbone.preprocessing import PREPROCESSINGS
from ..data.images import read_image
from ..data.masks import read_label_png
from ..errors import DataFormatError, InputError
from ..records import RunRecord
from .config import PoolingMode
from .index import DEFAULT_FACTORY, SegmentIndex, index_config
from .pooling import pool_masks
from .proposals import ImageProposals, ProposalConfig, Proposer
from .queries import QueryResult, hits_from
from .segments import SegmentRecord


# --------------------------------------------------------------------------------------- extractors
def extractor_for_index(
    config: dict,
    checkpoint: str | None = None,
    device: str = "auto",
    batch_size: int = 4,
    overrides: dict | None = None,
) -> FeatureExtractor:
    """Rebuild the feature extractor an index was made with, from its recorded run record.

    Args:
        config: ``SegmentIndex.config``.
        checkpoint: the checkpoint file, required when the index was built from one (``file:...`` weights).
        overrides: BackboneConfig fields (``name``, ``weights``, ``layer``, ``output_stride``,
            ``stride_mode``) and ``resize`` to use instead of the recorded ones; None values are
            ignored. The index refuses the result later if it makes other vectors.
    """
    record = RunRecord.from_dict(config, "the index's run record")
    fields = {key: record.backbone[key] for key in ("name", "weights", "layer", "output_stride", "stride_mode")}
    changes = {key: value for key, value in (overrides or {}).items() if value is not None}
    resize = changes.pop("resize", record.features["resize"])
    fields.update(changes)
    if checkpoint is not None:
        fields["weights"] = str(checkpoint)
    elif str(fields["weights"]).startswith("file:"):
        raise InputError(
            f"the index was built with weights from a checkpoint file ({fields['weights'][5:]})",
            hint="pass the same file with --checkpoint",
        )
    feature_config = FeatureConfig(
        resize=resize,
        preprocess=_recorded_preprocessing(record.features["preprocess"]),
        l2_normalize=record.features["l2_normalize"],
        batch_size=batch_size,
        device=device,
    )
    return FeatureExtractor.build(BackboneConfig(**fields), feature_config)


def _recorded_preprocessing(recorded: Any) -> str:
    """The name of the recipe an index was made with, once checked to mean today what it meant then."""
    name = recorded.get("name") if isinstance(recorded, dict) else None
    recipe = PREPROCESSINGS.get(name) if isinstance(name, str) else None
    if recipe is None or recipe.record() != recorded:
        raise DataFormatError(
            f"the index was made with a preprocessing recipe this version does not have ({recorded!r})",
            hint="query it with the version of dense-retrieval that built it, or rebuild the index",
        )
    return name


# --------------------------------------------------------------------------------------- segments of images
def iter_segments(
    images: Iterable[Path], extractor: FeatureExtractor, proposer: Proposer, pooling: PoolingMode = "upsample"
) -> Iterator[tuple[ImageProposals, np.ndarray]]:
    """Propose and pool the segments of each image, streaming.

    Yields:
        (proposals of one image, float32 [K, C] L2-normalised segment vectors).
    """
    images = list(images)
    proposer.check_images(images)
    decoded = ((path, read_image(path, extractor.preprocessing.decode)) for path in images)
    for (path, rgb), maps in extractor.stream(decoded, lambda pair: pair[1], total=len(images), desc="segments"):
        features = maps.single()
        proposals = proposer(path, rgb, features if proposer.needs_features else None)
        vectors = pool_masks(features, torch.from_numpy(proposals.masks), pooling).numpy()
        yield proposals, vectors


TRAIN_VECTORS = 131072
"""An untrained factory (IVF, PQ) is trained on the first this many segments of the build (all of them
when fewer): training on the first image's few vectors alone cannot work."""


def add_images(
    index: SegmentIndex,
    images: Iterable[str | os.PathLike],
    extractor: FeatureExtractor,
    proposals: ProposalConfig,
    pooling: PoolingMode = "upsample",
    allow_duplicates: bool = False,
    final: bool = True,
) -> dict:
    """Index the segments of ``images`` into ``index`` in one commit; returns a report.

    Images already in the index (same path, same content: sha256 of the file) are skipped and counted,
    unless ``allow_duplicates``. ``final``: the commit is the command's result (see
    :meth:`SegmentIndex.batch`).

    Raises:
        ConfigMismatchError: the extractor or pooling differ from the index's.
    """
    config = index_config(extractor.describe(), pooling, extractor.channels)
    index.check_config(config)
    paths = list(dict.fromkeys(Path(p).resolve() for p in images))
    digests = {path: _sha256(path) for path in paths}
    skipped = [path for path in paths if not allow_duplicates and index.indexed(path, digests[path])]
    todo = [path for path in paths if path not in set(skipped)]
    proposer = Proposer(proposals)
    before = index.ntotal
    pending: list[tuple[np.ndarray, list[SegmentRecord]]] = []
    waiting = 0
    with index.batch(final=final):
        for found, vectors in iter_segments(todo, extractor, proposer, pooling):
            records = [
                SegmentRecord(image=str(found.image), method=found.method, mask=mask, label=label)
                for mask, label in zip(found.masks, found.labels, strict=True)
            ]
            index.record_image(found.image, digests[Path(found.image)])
            if not records:
                continue
            if index.trained:
                index.add(vectors, records, config)
                continue
            pending.append((vectors, records))  # an untrained factory waits for enough training vectors
            waiting += len(records)
            if waiting >= TRAIN_VECTORS:
                _train_and_add(index, pending, config)
        if pending:
            _train_and_add(index, pending, config)
    return {
        "index": str(index.path),
        "images": len(paths),
        "skipped": len(skipped),
        "added": index.ntotal - before,
        "segments": index.ntotal,
        "proposals": proposals.describe(),
        "proposal_stats": proposer.stats.as_dict(),
    }


def _train_and_add(index: SegmentIndex, pending: list, config: dict) -> None:
    index.train(np.concatenate([vectors for vectors, _ in pending]))
    for vectors, records in pending:
        index.add(vectors, records, config)
    pending.clear()


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_index(
    images: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    extractor: FeatureExtractor,
    proposals: ProposalConfig,
    pooling: PoolingMode = "upsample",
    factory: str = DEFAULT_FACTORY,
    overwrite: bool = False,
    **staged: Any,
) -> dict:
    """Build a new index at ``out`` from ``images``; it appears only when complete and valid.

    The build runs in stages through a staging folder next to ``out`` (:mod:`.build`): an interrupted
    build (even a killed process) leaves any previous index at ``out`` untouched, and a rerun keeps the
    shards that were finished. ``overwrite`` replaces only an index (or an empty folder), and holds the
    previous index's writer lock for the whole build: a build over an index being written (by ``index add``
    or another build) is refused at once, and an add cannot start meanwhile.

    ``staged`` takes the fields of :class:`.index.assemble.IndexOptions` (``max_memory``, ``codec_from``,
    ``on_disk``, ``recall_queries``; with one of the first two ``factory`` is not used) and the options of
    :func:`.build.build_staged` (``shard_images``, ``ranks``, ``log``).
    """
    from .build import build_staged
    from .index.assemble import IndexOptions

    fields = {
        key: staged.pop(key) for key in ("max_memory", "codec_from", "on_disk", "recall_queries") if key in staged
    }
    if fields.get("max_memory") is None and fields.get("codec_from") is None:
        fields["factory"] = factory
    options = IndexOptions(**fields)
    return build_staged(list(images), out, extractor, proposals, pooling, options, overwrite=overwrite, **staged)


# --------------------------------------------------------------------------------------- queries
def query_mask(
    index: SegmentIndex,
    extractor: FeatureExtractor,
    image: str | os.PathLike,
    mask: np.ndarray | str | os.PathLike,
    k: int = 10,
    pooling: PoolingMode | None = None,
) -> QueryResult:
    """The ``k`` segments most similar to ``mask`` of ``image``.

    Args:
        mask: bool [H, W] at the image size, or a PNG file (nonzero pixels are the segment).
    """
    path = Path(image)
    rgb = read_image(path, extractor.preprocessing.decode)
    if not isinstance(mask, np.ndarray):
        mask = read_label_png(mask, binary=True).astype(bool)
    if mask.shape != rgb.shape[:2]:
        raise DataFormatError(
            f"query mask is {mask.shape[0]}x{mask.shape[1]} but {path.name} is {rgb.shape[0]}x{rgb.shape[1]}",
            hint="the mask must have the size of its image",
        )
    if not mask.any():
        raise InputError("the query mask is empty", hint="mark the segment with nonzero pixels")
    result = QueryResult(str(path), mask.astype(bool), "mask")
    _run_queries(index, extractor, rgb, [result], k, pooling)
    return result


def query_proposals(
    index: SegmentIndex,
    extractor: FeatureExtractor,
    image: str | os.PathLike,
    proposals: ProposalConfig,
    k: int = 10,
    pooling: PoolingMode | None = None,
) -> list[QueryResult]:
    """Propose the segments of ``image`` and query the index with each of them."""
    path = Path(image)
    rgb = read_image(path, extractor.preprocessing.decode)
    features = extractor.extract([rgb]).features[0]
    found = Proposer(proposals)(path, rgb, features)
    results = [
        QueryResult(str(path), mask, proposals.method, label=label)
        for mask, label in zip(found.masks, found.labels, strict=True)
    ]
    _run_queries(index, extractor, rgb, results, k, pooling, features)
    return results


def _run_queries(
    index: SegmentIndex,
    extractor: FeatureExtractor,
    rgb: np.ndarray,
    results: list[QueryResult],
    k: int,
    pooling: PoolingMode | None,
    features: torch.Tensor | None = None,
) -> None:
    if not results:
        return
    pooling = pooling or index.config.get("pooling", "upsample")
    index.check_config(index_config(extractor.describe(), pooling, extractor.channels))
    if features is None:
        features = extractor.extract([rgb]).features[0]
    masks = torch.from_numpy(np.stack([r.mask for r in results]))
    vectors = pool_masks(features, masks, pooling).numpy()
    scores, ids = index.search(vectors, k)
    for result, row_scores, row_ids in zip(results, scores, ids, strict=True):
        result.hits = hits_from(index, row_scores, row_ids)
