"""Reading a patch memory: query patches -> k nearest memory patches -> attention over their labels.

Queries are searched as they are (the reproduction does not normalise them; the memory is normalised, so
the ranking is the cosine ranking) in batches of about ``query_batch`` patches gathered across images.
The attention weights use the cosine of each neighbour, the search's inner product divided by the
query's norm: exact for ``Flat`` and ``IVF,Flat`` memories, the codec's estimate for SQ/PQ ones. A
neighbour an approximate search did not fill (id -1) gets no weight.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch

from .memory import PatchMemory
from .patches import attention_readout, label_map

T = TypeVar("T")


def read_patches(
    memory: PatchMemory, queries: np.ndarray, neighbours: int, temperature: float, seconds: dict | None = None
) -> torch.Tensor:
    """float32 [Q, C]: the label of each query patch float32 [Q, D] (module doc).

    Args:
        seconds: accumulates ``search`` and ``readout`` wall time when given.
    """
    started = time.perf_counter()
    scores, ids = memory.search(queries, neighbours)
    searched = time.perf_counter()
    missing = ids < 0
    norms = np.linalg.norm(queries, axis=1, keepdims=True)
    cosines = scores / np.maximum(norms, np.finfo(np.float32).tiny)
    cosines[missing] = -np.inf
    cosines[missing.all(axis=1)] = 0.0  # nothing found: zero weights on zero labels, not NaN
    labels = memory.labels_of(np.where(missing, 0, ids))
    labels[missing] = 0.0
    result = attention_readout(torch.from_numpy(cosines), torch.from_numpy(labels), temperature)
    if seconds is not None:
        seconds["search"] = seconds.get("search", 0.0) + searched - started
        seconds["readout"] = seconds.get("readout", 0.0) + time.perf_counter() - searched
    return result


def predict(
    memory: PatchMemory,
    items: Iterable[tuple[T, torch.Tensor, tuple[int, int]]],
    neighbours: int,
    temperature: float,
    query_batch: int = 4096,
    seconds: dict | None = None,
) -> Iterator[tuple[T, torch.Tensor]]:
    """Per item ``(key, features float [D, h, w], (H, W))``: ``(key, predicted classes int64 [H, W])``.

    Patches of consecutive items are searched together once they reach ``query_batch``; results come back
    in input order.
    """
    waiting: list[tuple[T, tuple[int, int], tuple[int, int]]] = []
    blocks: list[np.ndarray] = []
    count = 0

    def flush() -> Iterator[tuple[T, torch.Tensor]]:
        nonlocal count
        labels = read_patches(memory, np.concatenate(blocks), neighbours, temperature, seconds)
        started, offset = time.perf_counter(), 0
        for key, grid, size in waiting:
            cells = grid[0] * grid[1]
            yield key, label_map(labels[offset : offset + cells], grid, size)
            offset += cells
        if seconds is not None:
            seconds["upsample"] = seconds.get("upsample", 0.0) + time.perf_counter() - started
        waiting.clear()
        blocks.clear()
        count = 0

    for key, features, size in items:
        dim, height, width = features.shape
        blocks.append(features.reshape(dim, -1).T.float().contiguous().numpy())
        waiting.append((key, (height, width), size))
        count += height * width
        if count >= query_batch:
            yield from flush()
    if waiting:
        yield from flush()
