"""Label propagation through a video, one frame at a time (CRW / DINO protocols).

Each target frame gets its labels from a context of earlier frames (see :class:`PropagationConfig`).
Only the features of frames still in the context are kept (a ring of at most ``context + 1`` frames;
repeated copies of the first frame share one tensor), so memory does not grow with video length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError
from .affinity import Scratch, WindowedTopK, global_topk
from .config import CRW, PropagationConfig


@dataclass(frozen=True, eq=False)
class MemoryFrame:
    """A context frame: its features and the (soft) labels it passes on.

    Attributes:
        index: frame number in the video.
        keys: float ``[h * w, C]``, channels-last rows in row-major grid order.
        labels: float ``[h * w, L]`` label distributions.
    """

    index: int
    keys: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def from_maps(cls, index: int, features: torch.Tensor, labels: torch.Tensor) -> MemoryFrame:
        """From ``features`` ``[C, h, w]`` and ``labels`` ``[L, h, w]``."""
        channels, num_labels = features.shape[0], labels.shape[0]
        keys = features.permute(1, 2, 0).reshape(-1, channels).contiguous()
        return cls(index, keys, labels.permute(1, 2, 0).reshape(-1, num_labels).contiguous().to(keys.dtype))


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


def propagate_step(
    query: torch.Tensor,
    slots: Sequence[tuple[MemoryFrame, bool]],
    config: PropagationConfig,
    scratch: Scratch | None = None,
) -> tuple[torch.Tensor, Neighbours]:
    """Labels of one target frame from an explicit context.

    Args:
        query: float ``[C, h, w]`` features of the target frame.
        slots: the context, one ``(frame, restricted)`` pair per slot; ``restricted`` applies the
            config's window. The same :class:`MemoryFrame` may fill several slots (CRW's copies of the
            first frame); it then counts several times in the joint top-k, as in CRW.
        config: top-k, temperature and window.
        scratch: work buffers kept from one step to the next (:class:`LabelPropagator` keeps one).

    Returns:
        labels: float ``[L, h, w]``, the weighted sum of the neighbours' labels;
        neighbours: the selected context positions.
    """
    if not slots:
        raise InputError("the context is empty", hint="start the propagation with a first frame")
    channels, height, width = query.shape
    if any(frame.keys.shape != (height * width, channels) for frame, _ in slots):
        shapes = sorted({tuple(frame.keys.shape) for frame, _ in slots})
        raise InputError(
            f"context features {shapes} do not match the query's {height}x{width} grid of {channels} channels",
            hint="every frame of a video must be extracted at the same size",
        )
    k, hw = config.topk, height * width
    scratch = scratch or Scratch()
    query_rows = query.permute(1, 2, 0).reshape(-1, channels).contiguous()  # no copy when channels-last
    # distinct frames (copies share one MemoryFrame) and, per (frame, windowed?), how many slots it fills
    position_of: dict[int, int] = {}
    frames: list[MemoryFrame] = []
    counts: dict[bool, dict[int, int]] = {True: {}, False: {}}
    for frame, restricted in slots:
        if id(frame) not in position_of:
            position_of[id(frame)] = len(frames)
            frames.append(frame)
        group = counts[bool(restricted and config.radius is not None)]
        group[position_of[id(frame)]] = group.get(position_of[id(frame)], 0) + 1

    values, ids, copies = [], [], []
    for restricted, group in counts.items():
        if not group:
            continue
        members = list(group)
        keys = [frames[member].keys for member in members]
        if restricted:
            windowed = WindowedTopK(
                query_rows.view(height, width, channels),
                k,
                config.max_offset,
                config.window,
                float(config.radius),
                config.tile,
                scratch,
            )
            group_values, which, group_positions = windowed(keys)
        else:
            group_values, which, group_positions = global_topk(query_rows, keys, k, config.query_chunk, width, scratch)
        members_t = torch.tensor(members, dtype=torch.long, device=query.device)
        values.append(group_values)
        ids.append(members_t[which] * hw + group_positions)
        # a frame filling `count` slots offers each of its candidates `count` times (at most k matter)
        copies.append(torch.tensor([min(group[m], k) for m in members], device=query.device)[which])
    repeated = any(count > 1 for group in counts.values() for count in group.values())
    scores, global_ids = _multiset_topk(
        torch.cat(values, 1), torch.cat(ids, 1), torch.cat(copies, 1) if repeated else None, k
    )
    weights = torch.softmax(scores / config.temperature, dim=1)

    table = torch.cat([frame.labels for frame in frames], dim=0)  # [F * h * w, L]
    labels = (table[global_ids] * weights[..., None]).sum(dim=1)  # [h * w, L]
    frame_numbers = torch.tensor([frame.index for frame in frames], dtype=torch.long, device=global_ids.device)
    neighbours = Neighbours(
        scores=scores,
        weights=weights,
        frames=frame_numbers[global_ids // hw],
        positions=global_ids % hw,
    )
    return labels.T.reshape(-1, height, width).contiguous(), neighbours


def _multiset_topk(
    values: torch.Tensor, ids: torch.Tensor, copies: torch.Tensor | None, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of a multiset: candidate ``j`` of row ``i`` counts ``copies[i, j]`` times.

    Args:
        values, ids: ``[n, c]`` candidate scores and ids.
        copies: int64 ``[n, c]``, how many slots offer each candidate (>= 1); ``None``: one each.
        k: entries to keep (``c >= k``).

    Returns:
        values ``[n, k]`` sorted descending (``-inf`` past the last copy) and their ids ``[n, k]``.
    """
    if copies is None:
        top, pick = torch.topk(values, k, dim=1)
        return top, torch.gather(ids, 1, pick)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    sorted_values = torch.gather(values, 1, order)
    filled = torch.gather(copies, 1, order).cumsum(dim=1)  # slots filled up to and including each candidate
    slot = torch.arange(k, device=values.device).expand(values.shape[0], k).contiguous()
    pick = torch.searchsorted(filled, slot, right=True).clamp_(max=values.shape[1] - 1)
    top = torch.where(slot < filled[:, -1:], torch.gather(sorted_values, 1, pick), float("-inf"))
    return top, torch.gather(ids, 1, torch.gather(order, 1, pick))


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
        fed_back = labels
        if self.config.feedback == "hard":
            fed_back = F.one_hot(labels.argmax(dim=0), labels.shape[0]).permute(2, 0, 1).to(labels.dtype)
        if self.config.context > 0:
            self._recent.append(MemoryFrame.from_maps(self._next_index, features, fed_back))
        self._next_index += 1
        return labels

    def _slots(self) -> list[tuple[MemoryFrame, bool]]:
        """The context of the next target: first frame, then the short-term frames oldest first."""
        config = self.config
        slots = [(self._first, config.restrict_first)]
        recent = list(self._recent)
        if config.fill_with_first:
            missing = config.context - len(recent)
            slots += [(self._first, True)] * missing
        slots += [(frame, True) for frame in recent[-config.context :]] if config.context else []
        return slots


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
