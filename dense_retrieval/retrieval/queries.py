"""Answering queries from what an index stores: hits, stored-segment queries, batches of queries, galleries.

Torch-free: a query by stored segment needs only the index (FAISS + SQLite), so `dense-retrieval query
--segment-id` and a batch of such queries never load torch. Queries by image + mask need features; a
batch builds its extractor only when its first such query comes (:func:`answer_queries`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import read_image
from ..data.voc import VOC_CLASSES
from ..errors import DenseRetrievalError, InputError
from ..viz.gallery import GalleryItem, retrieval_gallery, retrieval_row
from .index import SegmentIndex
from .segments import Segment


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


def query_segment(index: SegmentIndex, segment_id: int, k: int = 10, exclude_self: bool = True) -> QueryResult:
    """The ``k`` segments most similar to stored segment ``segment_id`` (by its stored vector)."""
    segment = index.segments([segment_id])[0]
    vector = index.reconstruct(segment_id)
    scores, ids = index.search(vector[None], k + int(exclude_self))
    result = QueryResult(segment.image, segment.mask(), f"segment:{segment_id}", label=segment.label)
    hits = hits_from(index, scores[0], ids[0])
    result.hits = [h for h in hits if not (exclude_self and h.segment.id == segment_id)][:k]
    return result


def hits_from(index: SegmentIndex, scores: np.ndarray, ids: np.ndarray) -> list[Hit]:
    """The hits of one row of ``index.search``: scores and ids ``[k]`` (id -1 = none) -> Hits, best first."""
    valid = ids >= 0
    segments = index.segments(ids[valid])
    return [Hit(float(s), seg) for s, seg in zip(scores[valid], segments, strict=True)]


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


# --------------------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class QuerySpec:
    """One line of a queries file: a stored segment, or an image and a mask PNG (paths resolved).

    Attributes:
        line: its line number in the file (1-based), echoed in the answer.
        segment_id: the stored segment to query with, or None.
        image, mask: the query image and its segment mask (nonzero pixels), or None.
        k: hits for this query (None: the command's ``-k``).
    """

    line: int
    segment_id: int | None = None
    image: str | None = None
    mask: str | None = None
    k: int | None = None


def read_queries(path: str | os.PathLike) -> list[QuerySpec]:
    """Read a queries file: JSON lines, one query each; blank lines and lines starting with ``#`` skipped.

    A line is ``{"segment_id": 3}`` or ``{"image": "a.jpg", "mask": "a_mask.png"}``, with an optional
    ``"k"``. Relative paths are relative to the queries file's folder.

    Raises:
        InputError: the file is missing, a line is not such an object (named by its number), or a file
            it names does not exist.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise InputError(f"cannot read the queries file {path}: {error.strerror}") from None
    specs = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        specs.append(_parse_query(line, number, path))
    if not specs:
        raise InputError(f"{path} holds no queries", hint='one JSON object per line, e.g. {"segment_id": 3}')
    return specs


def answer_queries(
    index: SegmentIndex,
    specs: list[QuerySpec],
    k: int,
    query_mask: Callable[[str, str, int], QueryResult],
) -> Iterator[dict[str, Any]]:
    """Answer every query in order: one JSON-ready dict each, ``{"line", ...QueryResult.as_dict()}``.

    A query that fails (an unknown segment id, an unreadable image) gives ``{"line", "error", "hint"}``
    and the batch goes on.

    Args:
        index: the open index.
        specs: from :func:`read_queries`.
        k: hits per query unless a line sets its own.
        query_mask: answers an (image, mask, k) query; called only for such lines, so whatever it needs
            (a feature extractor, torch) is loaded only if the batch holds one.
    """
    for spec in specs:
        hits = spec.k or k
        try:
            if spec.segment_id is not None:
                result = query_segment(index, spec.segment_id, hits)
            else:
                result = query_mask(spec.image, spec.mask, hits)
        except DenseRetrievalError as error:
            yield {"line": spec.line, "error": str(error), "hint": error.hint}
            continue
        yield {"line": spec.line, **result.as_dict()}


def _parse_query(line: str, number: int, path: Path) -> QuerySpec:
    where = f"{path.name} line {number}"
    hint = 'one JSON object per line: {"segment_id": 3} or {"image": "a.jpg", "mask": "a.png"}, optional "k"'
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"{where} is not JSON ({error.msg})", hint=hint) from None
    if not isinstance(entry, dict) or set(entry) - {"segment_id", "image", "mask", "k"}:
        raise InputError(f"{where}: expected an object with segment_id or image + mask, got {line[:80]}", hint=hint)
    k = entry.get("k")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise InputError(f"{where}: k must be a positive integer, got {k!r}", hint=hint)
    segment_id = entry.get("segment_id")
    if segment_id is not None:
        if not isinstance(segment_id, int) or isinstance(segment_id, bool) or "image" in entry or "mask" in entry:
            raise InputError(f"{where}: segment_id must be an integer, alone, got {line[:80]}", hint=hint)
        return QuerySpec(number, segment_id=segment_id, k=k)
    missing = [key for key in ("image", "mask") if not isinstance(entry.get(key), str) or not entry[key]]
    if missing:
        raise InputError(f"{where}: needs both image and mask paths (missing {' and '.join(missing)})", hint=hint)
    files = []
    for key in ("image", "mask"):
        file = Path(entry[key]) if Path(entry[key]).is_absolute() else path.parent / entry[key]
        if not file.is_file():
            raise InputError(f"{where}: {key} {file} does not exist", hint="paths are relative to the queries file")
        files.append(str(file))
    return QuerySpec(number, image=files[0], mask=files[1], k=k)
