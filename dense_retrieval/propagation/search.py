"""The joint top-k of one query frame over its context: exact in float32, or found faster in bfloat16.

Both searches return the same neighbours: the ``k`` context positions with the largest float32 dot
products, jointly over every slot (a frame filling several slots counts several times).

**Exact** (:func:`exact_candidates`): the windowed frames through
:class:`~dense_retrieval.propagation.affinity.WindowedTopK`, the unrestricted ones through
:func:`~dense_retrieval.propagation.affinity.global_topk`, in the features' own precision.

**Certified bfloat16** (:func:`certified_topk`), on CPUs that multiply bfloat16 natively (AVX512-BF16,
AMX), where a matrix product runs 2-3x faster than in float32: the same two searches in bfloat16 keep
``candidates(k)`` positions per query instead of ``k``, the float32 dot products of those candidates
are computed, and their float32 top-k is the answer whenever it is provably the true one. A bfloat16
score ``s'`` differs from the float32 score ``s`` by at most ``eps_q``, from the rounding of the query and
of the keys (Cauchy-Schwarz: ``|q.k - bq.bk| <= |q - bq| |k| + |bq| |k - bk|``), of the float32
accumulation and of the bfloat16 result. A position left out has ``s' <= b`` (the smallest bfloat16
score kept), so ``s <= b + eps_q``: when the k-th float32 score of the candidates is larger, no position
left out can enter the top-k. The few queries without that certificate are searched again exactly
(:func:`exact_rows`). Scores equal the float32 ones to float rounding (another summation order).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .affinity import Scratch, WindowedTopK, global_topk, window_allows
from .config import PropagationConfig

LOW = torch.bfloat16
"""The precision of the candidate search."""

_BF16_UNIT = 2.0**-8  # unit roundoff of bfloat16 (8 significant bits)
_FP32_UNIT = 2.0**-24
_SAFETY = 1.01  # on top of the rounding bound: norms and the bound itself are computed in float32
_ROWS = 512  # queries rescored per chunk: bounds the gathered keys in memory
_MAX_EXACT_ROWS = 512  # more queries without a certificate than this: the exact search for the whole frame
_EXACT_ROWS = 64  # queries searched again exactly at once (bounds their scores: rows x frame size)

Groups = dict[bool, dict[int, int]]
"""Per ``restricted`` flag: member index (into the distinct frames) -> number of slots it fills."""


def candidates(k: int) -> int:
    """Positions kept per query by the bfloat16 windowed search for a top-``k`` (28 for CRW's 10).

    On real DAVIS frames (MobileNetV2 features.13, stride 8, CRW, 20 context frames) 24 leave up to 60 of
    a frame's 6420 queries without a certificate, 32 up to 26, 48 up to 7: static backgrounds, whose keys
    repeat nearly unchanged in every context frame, need the most. More candidates cost more top-k work;
    28 was the fastest on whole sequences (speed only: the neighbours are the same).
    """
    return 2 * k + 8


@functools.cache
def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX), where oneDNN runs bfloat16
    matrix products faster than float32 ones; elsewhere they would be emulated, and slower."""
    try:
        capability = torch._C._cpu._get_cpu_capability()  # noqa: SLF001 - torch's own CPU feature table
    except (AttributeError, RuntimeError):
        return False
    return bool(capability.get("avx512_bf16") or capability.get("amx_bf16"))


def use_low_precision(query: torch.Tensor) -> bool:
    """The certified bfloat16 search applies: float32 features on a CPU with native bfloat16."""
    return query.dtype == torch.float32 and query.device.type == "cpu" and native_bfloat16()


@dataclass(frozen=True)
class LowKeys:
    """A key frame in bfloat16 with what the error bound needs.

    Attributes:
        keys: bfloat16 ``[hw, C]``.
        norm: the largest float32 key norm ``max |k|``.
        error: the largest rounding error ``max |k - bk|``.
        low_norm: the largest bfloat16 key norm ``max |bk|``.
    """

    keys: torch.Tensor
    norm: float
    error: float
    low_norm: float

    @classmethod
    def of(cls, keys: torch.Tensor) -> LowKeys:
        """From float32 keys ``[hw, C]``."""
        low = keys.to(LOW)
        wide = low.float()
        return cls(
            low,
            float(keys.norm(dim=1).max()),
            float((keys - wide).norm(dim=1).max()),
            float(wide.norm(dim=1).max()),
        )


def exact_candidates(
    query_rows: torch.Tensor,
    grid: tuple[int, int],
    keys: Sequence[torch.Tensor],
    groups: Groups,
    config: PropagationConfig,
    kept: dict[bool, int],
    scratch: Scratch,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per query and per group, the best positions of its frames, in the precision of ``keys``.

    Args:
        query_rows: ``[h * w, C]``, channels-last rows (same dtype as ``keys``).
        grid: ``(h, w)``.
        keys: per distinct frame, ``[h * w, C]``.
        groups: which frames are searched windowed / unrestricted and how many slots each fills.
        kept: positions to keep per query, for the windowed (``True``) and the unrestricted group.

    Returns:
        values ``[h * w, c]`` (``-inf`` padding), ids ``[h * w, c]`` (``member * h * w + position``),
        copies ``[h * w, c]`` (slots filled by the candidate's frame, at most ``k``), and the smallest value
        kept per group ``[h * w, groups]`` (``-inf`` when a group had fewer than ``k`` positions).
    """
    height, width = grid
    hw, channels = height * width, query_rows.shape[1]
    values, ids, copies, smallest = [], [], [], []
    for restricted, group in groups.items():
        if not group:
            continue
        members = list(group)
        frames = [keys[member] for member in members]
        k = kept[restricted]
        if restricted:
            search = WindowedTopK(
                query_rows.view(height, width, channels),
                k,
                config.max_offset,
                config.window,
                float(config.radius),
                config.tile,
                scratch,
            )
            group_values, which, positions = search(frames)
        else:
            group_values, which, positions = global_topk(query_rows, frames, k, config.query_chunk, width, scratch)
        members_t = torch.tensor(members, dtype=torch.long, device=query_rows.device)
        values.append(group_values)
        ids.append(members_t[which] * hw + positions)
        copies.append(torch.tensor([min(group[m], k) for m in members], device=query_rows.device)[which])
        smallest.append(group_values[:, -1])
    return torch.cat(values, 1), torch.cat(ids, 1), torch.cat(copies, 1), torch.stack(smallest, 1)


def exact_topk(
    query_rows: torch.Tensor,
    grid: tuple[int, int],
    keys: Sequence[torch.Tensor],
    groups: Groups,
    config: PropagationConfig,
    scratch: Scratch,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The joint top-k in the precision of the features: values ``[h * w, k]`` (descending, ``-inf``
    padding) and ids ``[h * w, k]`` (``member * h * w + position``)."""
    k = config.topk
    values, ids, copies, _ = exact_candidates(query_rows, grid, keys, groups, config, {True: k, False: k}, scratch)
    return multiset_topk(values, ids, copies if bool((copies > 1).any()) else None, config.topk)


def certified_topk(
    query_rows: torch.Tensor,
    grid: tuple[int, int],
    keys: Sequence[torch.Tensor],
    low: Sequence[LowKeys],
    groups: Groups,
    config: PropagationConfig,
    scratch: Scratch,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`exact_topk`'s answer, found through a bfloat16 candidate search (see the module docstring).

    Args:
        query_rows: float32 ``[h * w, C]``.
        keys, low: per distinct frame, the float32 keys ``[h * w, C]`` and their :class:`LowKeys`.
    """
    k, kept = config.topk, candidates(config.topk)
    low_query = query_rows.to(LOW)
    # the unrestricted frame (CRW's first) rarely holds the best keys: its top-k bounds the rest well
    approx, ids, copies, smallest = exact_candidates(
        low_query, grid, [frame.keys for frame in low], groups, config, {True: kept, False: k}, scratch
    )
    approx = approx.float()
    bound = smallest.float().amax(dim=1)  # a position no group kept scores at most this in bfloat16
    if approx.shape[1] > kept:  # the groups' candidates together: keep the best `kept` of them
        approx, pick = torch.topk(approx, kept, dim=1)
        bound = torch.maximum(bound, approx[:, -1])
        ids, copies = torch.gather(ids, 1, pick), torch.gather(copies, 1, pick)
    exact = _rescore(query_rows, keys, ids, torch.isfinite(approx))
    top, top_ids = multiset_topk(exact, ids, copies if bool((copies > 1).any()) else None, k)
    certain = torch.isneginf(bound) | (top[:, -1] > bound + _error_bound(query_rows, low_query, low))
    doubtful = (~certain).nonzero().flatten()
    if doubtful.numel() > _MAX_EXACT_ROWS:
        return exact_topk(query_rows, grid, keys, groups, config, scratch)
    for start in range(0, doubtful.numel(), _EXACT_ROWS):
        rows = doubtful[start : start + _EXACT_ROWS]
        top[rows], top_ids[rows] = exact_rows(query_rows, rows, grid, keys, groups, config)
    return top, top_ids


def exact_rows(
    query_rows: torch.Tensor,
    rows: torch.Tensor,
    grid: tuple[int, int],
    keys: Sequence[torch.Tensor],
    groups: Groups,
    config: PropagationConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The joint top-k of a few queries, exactly, from every position of every context frame.

    Args:
        rows: int64 ``[r]`` query positions.

    Returns:
        values ``[r, k]`` and ids ``[r, k]`` as :func:`exact_topk` gives them.
    """
    height, width = grid
    hw, k = height * width, config.topk
    positions = torch.arange(hw, device=rows.device)
    outside = None
    if groups[True] and config.radius is not None:
        di = (positions // width)[None, :] - (rows // width)[:, None]
        dj = (positions % width)[None, :] - (rows % width)[:, None]
        outside = ~window_allows(di, dj, config.window, float(config.radius))  # [r, hw]
    queries = query_rows[rows]
    values, ids, copies = [], [], []
    for restricted, group in groups.items():
        for member, count in group.items():
            scores = queries @ keys[member].T  # [r, hw]
            if restricted and outside is not None:
                scores.masked_fill_(outside, float("-inf"))
            top, index = torch.topk(scores, min(k, hw), dim=1)  # a frame gives at most k of the joint top-k
            values.append(top)
            ids.append(member * hw + index)
            copies.append(torch.full_like(index, min(count, k)))
    return multiset_topk(torch.cat(values, 1), torch.cat(ids, 1), torch.cat(copies, 1), k)


def multiset_topk(
    values: torch.Tensor, ids: torch.Tensor, copies: torch.Tensor | None, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of a multiset: candidate ``j`` of row ``i`` counts ``copies[i, j]`` times.

    Args:
        values, ids: ``[n, c]`` candidate scores and ids.
        copies: int64 ``[n, c]``, how many slots offer each candidate (>= 1); ``None``: one each.
        k: entries to keep.

    Returns:
        values ``[n, k]`` sorted descending (``-inf`` past the last copy) and their ids ``[n, k]``.
    """
    if values.shape[1] < k:  # fewer candidates than k (tiny grids): pad, the padding is never picked
        pad = k - values.shape[1]
        values = torch.nn.functional.pad(values, (0, pad), value=float("-inf"))
        ids = torch.nn.functional.pad(ids, (0, pad))
        copies = None if copies is None else torch.nn.functional.pad(copies, (0, pad), value=1)
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


def _rescore(
    query_rows: torch.Tensor, keys: Sequence[torch.Tensor], ids: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """float32 dot products of each query with its candidate keys ``[hw, c]``; ``-inf`` where not ``valid``."""
    table = torch.cat(list(keys), dim=0) if len(keys) > 1 else keys[0]  # [frames * hw, C]
    exact = torch.empty(ids.shape, dtype=query_rows.dtype, device=query_rows.device)
    for start in range(0, ids.shape[0], _ROWS):
        stop = min(start + _ROWS, ids.shape[0])
        gathered = table.index_select(0, ids[start:stop].flatten()).view(stop - start, ids.shape[1], -1)
        torch.bmm(gathered, query_rows[start:stop, :, None], out=exact[start:stop, :, None])
    return exact.masked_fill_(~valid, float("-inf"))


def _error_bound(query_rows: torch.Tensor, low_query: torch.Tensor, low: Sequence[LowKeys]) -> torch.Tensor:
    """Per query, the largest ``|float32 score - bfloat16 score|`` over the keys of ``low``: ``[hw]``."""
    wide = low_query.float()
    error = (query_rows - wide).norm(dim=1)  # |q - bq|
    low_norm = wide.norm(dim=1)  # |bq|
    key_norm = max(frame.norm for frame in low)
    key_error = max(frame.error for frame in low)
    key_low_norm = max(frame.low_norm for frame in low)
    channels = query_rows.shape[1]
    rounding = (channels * _FP32_UNIT + _BF16_UNIT) * low_norm * key_low_norm  # accumulation + result
    return _SAFETY * (error * key_norm + low_norm * key_error + rounding) + 1e-6
