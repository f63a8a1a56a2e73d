"""Label propagation through a video, one frame at a time (CRW / DINO protocols).

Each target frame gets its labels from a context of earlier frames (see :class:`PropagationConfig`).
Only the features of frames still in the context are kept (a ring of at most ``context + 1`` frames;
repeated copies of the first frame share one tensor), so memory does not grow with video length.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError
from .affinity import Scratch
from .config import CRW, PropagationConfig
from .search import LowKeys, certified_topk, exact_topk, use_low_precision
from .search import multiset_topk as _multiset_topk  # noqa: F401 - the tests reach it here too

LOW_PRECISION_FRAMES = 14
"""Distinct windowed context frames from which the certified bfloat16 search pays (speed only: both
searches return the same neighbours): below, its fixed costs (rescoring, the certificate) outweigh the
faster products (measured on DAVIS frames, MobileNetV2 features.13 at stride 8)."""


@dataclass(frozen=True, eq=False)
class MemoryFrame:
    """A context frame: its features and the (soft) labels it passes on.

    Attributes:
        index: frame number in the video.
        keys: float ``[h * w, C]``, channels-last rows in row-major grid order.
        labels: float ``[h * w, L]`` label distributions; ``None`` for a frame that only serves a
            neighbour search (:func:`find_neighbours`), its labels kept elsewhere.
        grid: ``(h, w)`` (``from_maps`` records it; needed only for :attr:`query`).
    """

    index: int
    keys: torch.Tensor
    labels: torch.Tensor | None = None
    grid: tuple[int, int] = (0, 0)

    @classmethod
    def from_maps(cls, index: int, features: torch.Tensor, labels: torch.Tensor | None = None) -> MemoryFrame:
        """From ``features`` ``[C, h, w]`` and ``labels`` ``[L, h, w]`` (or none)."""
        channels, height, width = features.shape
        keys = features.permute(1, 2, 0).reshape(-1, channels).contiguous()  # no copy when channels-last
        if labels is not None:
            labels = labels.permute(1, 2, 0).reshape(-1, labels.shape[0]).contiguous().to(keys.dtype)
        return cls(index, keys, labels, (height, width))

    @property
    def query(self) -> torch.Tensor:
        """The features as a query ``[C, h, w]`` (a channels-last view of :attr:`keys`)."""
        return self.keys.view(*self.grid, -1).permute(2, 0, 1)

    @functools.cached_property
    def low(self) -> LowKeys:
        """The keys in bfloat16 for the certified search, made once per frame."""
        return LowKeys.of(self.keys)

    def prepare(self) -> None:
        """Make now what a search in this frame's context will need (the bfloat16 keys, where used)."""
        if use_low_precision(self.keys):
            _ = self.low


@dataclass(frozen=True)
class Neighbours:
    """The top-k context positions each query position took its labels from.

    Attributes:
        scores: float ``[h * w, k]`` dot products, descending (``-inf`` for unused slots).
        weights: float ``[h * w, k]`` softmax of ``scores / temperature``.
        frames: int64 ``[h * w, k]`` video frame numbers of the neighbours.
        positions: int64 ``[h * w, k]`` grid positions ``i * w + j`` in those frames.
    """

    scores: torch.Tensor
    weights: torch.Tensor
    frames: torch.Tensor
    positions: torch.Tensor


def context_of(target: int, config: PropagationConfig) -> list[tuple[int, bool]]:
    """The context slots of frame ``target``: ``(frame number, windowed?)``, the first frame first.

    CRW: frame 0 unrestricted, then the ``context`` previous frames, copies of frame 0 standing in for
    the frames before the video; DINO: frame 0, then at most ``context`` previous frames after it.
    """
    recent = list(range(max(1, target - config.context), target)) if config.context else []
    slots = [(0, config.restrict_first)]
    if config.fill_with_first and config.context:
        slots += [(0, True)] * (config.context - len(recent))
    return slots + [(frame, True) for frame in recent]


def find_neighbours(
    query: torch.Tensor,
    slots: Sequence[tuple[MemoryFrame, bool]],
    config: PropagationConfig,
    scratch: Scratch | None = None,
) -> Neighbours:
    """The top-k context positions of every query position, jointly over the slots (labels not needed).

    The selection depends on the features alone, so the neighbours of later frames may be found while
    earlier frames still propagate (:func:`dense_retrieval.vos.frames.propagate_frames` does).

    Args:
        query: float ``[C, h, w]`` features of the target frame.
        slots: the context, one ``(frame, restricted)`` pair per slot; ``restricted`` applies the
            config's window. The same :class:`MemoryFrame` may fill several slots (CRW's copies of the
            first frame); it then counts several times in the joint top-k, as in CRW.
        config: top-k, temperature and window.
        scratch: work buffers kept from one step to the next (:class:`LabelPropagator` keeps one).
    """
    neighbours, _, _ = _search(query, slots, config, scratch or Scratch())
    return neighbours


def gather_labels(neighbours: Neighbours, labels_of: Mapping[int, torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
    """The weighted sum of the neighbours' labels.

    Args:
        labels_of: frame number -> float ``[h * w, L]`` labels of every frame the neighbours lie in.
        grid: ``(h, w)``.

    Returns:
        float ``[L, h, w]``.
    """
    present = torch.unique(neighbours.frames)  # sorted frame numbers
    table = torch.cat([labels_of[int(frame)] for frame in present.tolist()], dim=0)
    rows = torch.searchsorted(present, neighbours.frames) * (grid[0] * grid[1]) + neighbours.positions
    return _weighted(table, rows, neighbours.weights, grid)


def propagate_step(
    query: torch.Tensor,
    slots: Sequence[tuple[MemoryFrame, bool]],
    config: PropagationConfig,
    scratch: Scratch | None = None,
) -> tuple[torch.Tensor, Neighbours]:
    """Labels of one target frame from an explicit context.

    Args:
        query: float ``[C, h, w]`` features of the target frame.
        slots: as :func:`find_neighbours`; every frame carries its labels.
        config: top-k, temperature and window.
        scratch: work buffers kept from one step to the next.

    Returns:
        labels: float ``[L, h, w]``, the weighted sum of the neighbours' labels;
        neighbours: the selected context positions.
    """
    neighbours, ids, frames = _search(query, slots, config, scratch or Scratch())
    table = torch.cat([frame.labels for frame in frames], dim=0)  # [F * h * w, L]
    return _weighted(table, ids, neighbours.weights, tuple(query.shape[1:])), neighbours


def _search(
    query: torch.Tensor, slots: Sequence[tuple[MemoryFrame, bool]], config: PropagationConfig, scratch: Scratch
) -> tuple[Neighbours, torch.Tensor, list[MemoryFrame]]:
    """Neighbours, their ids ``member * h * w + position`` and the distinct frames (members)."""
    if not slots:
        raise InputError("the context is empty", hint="start the propagation with a first frame")
    channels, height, width = query.shape
    if any(frame.keys.shape != (height * width, channels) for frame, _ in slots):
        shapes = sorted({tuple(frame.keys.shape) for frame, _ in slots})
        raise InputError(
            f"context features {shapes} do not match the query's {height}x{width} grid of {channels} channels",
            hint="every frame of a video must be extracted at the same size",
        )
    query_rows = query.permute(1, 2, 0).reshape(-1, channels).contiguous()  # no copy when channels-last
    # distinct frames (copies share one MemoryFrame) and, per (frame, windowed?), how many slots it fills
    position_of: dict[int, int] = {}
    frames: list[MemoryFrame] = []
    groups: dict[bool, dict[int, int]] = {True: {}, False: {}}
    for frame, restricted in slots:
        if id(frame) not in position_of:
            position_of[id(frame)] = len(frames)
            frames.append(frame)
        group = groups[bool(restricted and config.radius is not None)]
        group[position_of[id(frame)]] = group.get(position_of[id(frame)], 0) + 1
    keys = [frame.keys for frame in frames]
    if use_low_precision(query_rows) and len(groups[True]) >= LOW_PRECISION_FRAMES:
        low = [frame.low for frame in frames]
        scores, ids = certified_topk(query_rows, (height, width), keys, low, groups, config, scratch)
    else:
        scores, ids = exact_topk(query_rows, (height, width), keys, groups, config, scratch)
    hw = height * width
    frame_numbers = torch.tensor([frame.index for frame in frames], dtype=torch.long, device=ids.device)
    neighbours = Neighbours(
        scores=scores,
        weights=torch.softmax(scores / config.temperature, dim=1),
        frames=frame_numbers[ids // hw],
        positions=ids % hw,
    )
    return neighbours, ids, frames


def _weighted(table: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``sum_j weights[:, j] * table[rows[:, j]]`` as ``[L, h, w]`` (table ``[n, L]``, rows/weights ``[hw, k]``)."""
    labels = (table[rows] * weights[..., None]).sum(dim=1)  # [h * w, L]
    return labels.T.reshape(-1, *grid).contiguous()


class LabelPropagator:
    """Streams label maps through a video: :meth:`start` with the first frame, then :meth:`step`.

    Args:
        config: the protocol (:data:`CRW` by default).

    Example:
        >>> propagator = LabelPropagator(CRW)
        >>> propagator.start(first_features, first_labels)   # [C, h, w], [L, h, w]
        >>> soft = propagator.step(next_features)            # [L, h, w]
    """

    def __init__(self, config: PropagationConfig = CRW):
        self.config = config
        self.last_neighbours: Neighbours | None = None
        self._first: MemoryFrame | None = None
        self._recent: deque[MemoryFrame] = deque(maxlen=max(config.context, 1))
        self._next_index = 0
        self._scratch = Scratch()  # work buffers reused by every step of every video

    @property
    def frames_seen(self) -> int:
        """Frames given so far, the first included."""
        return self._next_index

    def start(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Begin a video.

        Args:
            features: float ``[C, h, w]`` of the first frame.
            labels: float ``[L, h, w]`` its labels on the same grid (see ``labels_to_grid``).
        """
        if features.dim() != 3 or labels.dim() != 3 or features.shape[1:] != labels.shape[1:]:
            raise InputError(
                f"first-frame features {tuple(features.shape)} and labels {tuple(labels.shape)} must be "
                "[C, h, w] and [L, h, w] on the same grid",
                hint="resize the labels to the feature grid with labels_to_grid",
            )
        self._first = MemoryFrame.from_maps(0, features, labels)
        self._recent.clear()
        self._next_index = 1
        self.last_neighbours = None

    def step(self, features: torch.Tensor) -> torch.Tensor:
        """Propagate to the next frame.

        Args:
            features: float ``[C, h, w]`` of the next frame.

        Returns:
            float ``[L, h, w]`` label distributions of that frame.
        """
        if self._first is None:
            raise InputError("step() before start()", hint="call start(first_features, first_labels) first")
        labels, self.last_neighbours = propagate_step(features, self._slots(), self.config, self._scratch)
        if self.config.context > 0:
            self._recent.append(MemoryFrame.from_maps(self._next_index, features, fed_back(labels, self.config)))
        self._next_index += 1
        return labels

    def _slots(self) -> list[tuple[MemoryFrame, bool]]:
        """The context of the next target (:func:`context_of`)."""
        frames = {0: self._first, **{frame.index: frame for frame in self._recent}}
        return [(frames[index], restricted) for index, restricted in context_of(self._next_index, self.config)]


def fed_back(labels: torch.Tensor, config: PropagationConfig) -> torch.Tensor:
    """What a predicted frame passes on as context labels: ``labels`` ``[L, h, w]`` themselves (soft) or
    their one-hot argmax (hard)."""
    if config.feedback == "hard":
        return F.one_hot(labels.argmax(dim=0), labels.shape[0]).permute(2, 0, 1).to(labels.dtype)
    return labels


def propagate(
    features: Iterable[torch.Tensor], first_labels: torch.Tensor, config: PropagationConfig = CRW
) -> Iterator[torch.Tensor]:
    """Propagate ``first_labels`` through a stream of feature maps.

    Args:
        features: float ``[C, h, w]`` per frame, the first frame first.
        first_labels: float ``[L, h, w]`` labels of the first frame on the feature grid.
        config: the protocol.

    Yields:
        float ``[L, h, w]`` per frame; the first is ``first_labels`` itself.
    """
    propagator = LabelPropagator(config)
    stream = iter(features)
    first = next(stream, None)
    if first is None:
        return
    propagator.start(first, first_labels)
    yield first_labels
    for frame_features in stream:
        yield propagator.step(frame_features)
