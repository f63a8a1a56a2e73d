"""Segment retrieval: index images' segments, query by image + mask, by proposals, or by segment id.

The road (docs/architecture.md): images -> dense features -> mask proposals -> pooled, L2-normalised
segment vectors (:mod:`.pooling`) -> :class:`~.index.SegmentIndex` -> hits ranked by cosine similarity.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbone.config import BackboneConfig, FeatureConfig
from ..backbone.features import FeatureExtractor
from ..data.images import read_image
from ..data.masks import read_label_png
from ..data.voc import VOC_CLASSES
from ..errors import DataFormatError, DenseRetrievalError, InputError
from ..records import RunRecord
from ..viz.gallery import GalleryItem, retrieval_gallery, retrieval_row
from .config import PoolingMode
from .index import DEFAULT_FACTORY, SegmentIndex, index_config
from .pooling import pool_masks
from .proposals import ImageProposals, ProposalConfig, Proposer
from .segments import Segment, SegmentRecord


@dataclass(frozen=True)
class Hit:
    """One retrieved segment: cosine ``score`` and the stored :class:`~.segments.Segment`."""

    score: float
    segment: Segment

    def as_dict(self) -> dict:
        s = self.segment
        return {
            "score": self.score,
            "segment_id": s.id,
            "image": s.image,
            "method": s.method,
            "label": s.label,
            "label_name": label_text(s) or None,
            "bbox": list(s.bbox),
            "area": s.area,
            "mask_rle": s.rle,
        }


@dataclass
class QueryResult:
    """The hits of one query segment.

    Attributes:
        image: the query image file.
        mask: bool [H, W], the query segment.
        source: how the query was given: ``"mask"``, a proposal method, or ``"segment:<id>"``.
        hits: best first.
        label: the query segment's class when known (gt or coco proposals, stored segments).
    """

    image: str
    mask: np.ndarray
    source: str
    hits: list[Hit] = field(default_factory=list)
    label: int | None = None

    def as_dict(self) -> dict:
        ys, xs = np.nonzero(self.mask)
        bbox = [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1] if len(xs) else [0, 0, 0, 0]
        return {
            "image": self.image,
            "source": self.source,
            "label": self.label,
            "area": int(self.mask.sum()),
            "bbox": bbox,
            "hits": [hit.as_dict() for hit in self.hits],
        }


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
        interpolation=record.features["interpolation"],
        l2_normalize=record.features["l2_normalize"],
        batch_size=batch_size,
        device=device,
    )
    return FeatureExtractor.build(BackboneConfig(**fields), feature_config)


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
    decoded = ((path, read_image(path)) for path in images)
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
    rgb = read_image(path)
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
    rgb = read_image(path)
    features = extractor.extract([rgb]).features[0]
    found = Proposer(proposals)(path, rgb, features)
    results = [
        QueryResult(str(path), mask, proposals.method, label=label)
        for mask, label in zip(found.masks, found.labels, strict=True)
    ]
    _run_queries(index, extractor, rgb, results, k, pooling, features)
    return results


def query_segment(index: SegmentIndex, segment_id: int, k: int = 10, exclude_self: bool = True) -> QueryResult:
    """The ``k`` segments most similar to stored segment ``segment_id`` (by its stored vector)."""
    segment = index.segments([segment_id])[0]
    vector = index.reconstruct(segment_id)
    scores, ids = index.search(vector[None], k + int(exclude_self))
    result = QueryResult(segment.image, segment.mask(), f"segment:{segment_id}", label=segment.label)
    result.hits = [h for h in _hits(index, scores[0], ids[0]) if not (exclude_self and h.segment.id == segment_id)][:k]
    return result


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
        result.hits = _hits(index, row_scores, row_ids)


def _hits(index: SegmentIndex, scores: np.ndarray, ids: np.ndarray) -> list[Hit]:
    valid = ids >= 0
    segments = index.segments(ids[valid])
    return [Hit(float(s), seg) for s, seg in zip(scores[valid], segments, strict=True)]


# --------------------------------------------------------------------------------------- pictures
def render_gallery(results: list[QueryResult], height: int = 160) -> np.ndarray:
    """A picture of the queries and their hits: one row per query, uint8 [H, W, 3].

    The query segment is outlined in yellow with the rest of its image darkened; each hit shows its
    image with its segment outlined in green, captioned with rank, cosine score and label. A hit
    whose image can no longer be read (moved, deleted) shows as a grey panel.
    """
    if not results:
        raise InputError("nothing to draw: no query segments", hint="check the query mask or proposals")
    rows = []
    for result in results:
        query = GalleryItem(read_image(result.image), result.mask, f"query ({result.source})")
        hits = [_gallery_item(rank, hit) for rank, hit in enumerate(result.hits, start=1)]
        rows.append(retrieval_row(query, hits, height))
    return retrieval_gallery(rows)


def label_text(segment: Segment) -> str:
    """A segment's label for people: VOC class names for ground-truth segments, else the id."""
    if segment.label is None:
        return ""
    if segment.method == "gt" and 0 <= segment.label < len(VOC_CLASSES):
        return VOC_CLASSES[segment.label]
    return f"label {segment.label}"


def _gallery_item(rank: int, hit: Hit) -> GalleryItem:
    text = f"#{rank} {hit.score:.3f} {label_text(hit.segment)}".rstrip()
    try:
        image = read_image(hit.segment.image)
    except DenseRetrievalError:
        return GalleryItem(np.zeros((1, 1, 3), np.uint8), None, f"{text} (image missing)")
    if image.shape[:2] != hit.segment.size:
        return GalleryItem(image, None, f"{text} (image changed)")
    return GalleryItem(image, hit.segment.mask(), text)
