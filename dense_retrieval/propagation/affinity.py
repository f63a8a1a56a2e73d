"""Top-k affinities between a query frame and its context frames, without the dense matrix.

Windowed (spatially restricted) context frames are handled together, in square query tiles: the keys a
tile can reach form a ``(tile + 2R) x (tile + 2R)`` rectangle of every key frame; one batched matrix
product per group of tiles scores each tile against its rectangles in all frames at once, an additive
mask (0 or -inf) keeps the disk or square window of each query, and one top-k per query follows, jointly
over every frame. An unrestricted frame is one matrix product per chunk of queries. At most
``max_scores`` scores (windowed) or ``query_chunk x h*w`` scores (unrestricted) exist at once, instead of
CRW's ``h*w x h*w`` per context frame.

Top-k without sorting every score (:func:`column_topk`): the scores of one query are read as a table
whose columns are small candidate sets; the k largest entries all lie in the k columns with the largest
maxima, so a column maximum (one vectorised reduction), a top-k over the column maxima and a top-k over
the entries of the chosen columns give exactly the top-k (ties aside) at the cost of about one pass.

Work buffers come from a :class:`Scratch` that the caller keeps from one frame to the next: a video's
steps reuse the same memory instead of asking the allocator (and the kernel) for fresh pages each time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

MAX_SCORES = 1 << 20
"""Windowed scores held at once per intra-op thread (floats: 4 MiB in float32, about one tile of 36 queries
against 20 frames, so a tile's scores stay in a core's cache between the product, the mask and the top-k).
The tiles of one matrix product are capped so that ``tiles x tile**2 x frames x (tile + 2R)**2`` stays
below ``MAX_SCORES x threads``; at least one tile is always done."""

MAX_SCORES_GPU = 1 << 26
"""The same cap on a GPU (256 MiB): there, few large products beat cache-sized ones."""


class Scratch:
    """Reusable work buffers, one per name, grown when a larger one is asked for.

    A buffer is zero when first made and afterwards holds whatever its last user wrote: callers that need
    defined contents write them (the key buffer only ever holds keys or zeros, so never a NaN).
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A contiguous tensor of ``shape`` with ``like``'s dtype and device (one buffer per name and dtype)."""
        numel = math.prod(shape)
        key = f"{name}:{like.dtype}"
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < numel or buffer.device != like.device:
            buffer = like.new_zeros(numel)
            self._buffers[key] = buffer
        return buffer[:numel].view(shape)


def column_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row top-k of ``scores`` read as ``[rows, groups * width]``, without sorting every score.

    The groups are split into blocks of ``d`` consecutive groups; a column of a block (``d`` entries, one
    per group, at the same place in ``width``) is a candidate set whose maximum is one vectorised
    reduction. The k largest entries of a row lie in the k columns with the largest maxima, so a top-k
    over the ``groups / d * width`` column maxima and one over the ``d * k`` entries of the chosen columns
    give the same values as ``torch.topk(scores.view(rows, -1), k)`` (tied entries may swap). ``d`` is
    the largest divisor of ``groups`` that keeps the column maxima at least ``64 k`` (torch's partial-sort
    regime); with none, this is a plain ``torch.topk``.

    Args:
        scores: float ``[rows, groups, width]``, contiguous.
        k: entries to keep (at most ``groups * width``).

    Returns:
        values: ``[rows, k]`` sorted descending; index: int64 ``[rows, k]`` into ``groups * width``.
    """
    rows, groups, width = scores.shape
    flat = scores.view(rows, groups * width)
    block = max((d for d in range(1, groups + 1) if groups % d == 0 and groups // d * width >= 64 * k), default=1)
    if block == 1:
        return torch.topk(flat, k, dim=1)
    maxima = scores.view(rows, groups // block, block, width).amax(dim=2)  # [rows, groups / block, width]
    columns = torch.topk(maxima.view(rows, -1), k, dim=1).indices  # o * width + c
    first = torch.div(columns, width, rounding_mode="floor") * (block * width) + columns % width
    members = first[:, :, None] + torch.arange(0, block * width, width, device=scores.device)  # [rows, k, block]
    members = members.view(rows, k * block)
    values, index = torch.topk(torch.gather(flat, 1, members), k, dim=1)
    return values, torch.gather(members, 1, index)


class WindowedTopK:
    """Per-query top-k over the windows of one query frame in any number of key frames, jointly.

    The query grid is cut into ``tile x tile`` tiles (zero-padded to whole tiles). For one band of tiles
    (a row of tiles), the key rows the band can reach are copied, for every key frame, into a buffer laid
    out ``[column, frame, row, C]`` and padded by ``R`` columns on both sides; the keys of one tile's
    rectangle in all frames (``S x F x S`` with ``S = tile + 2R``) are then a contiguous block of that
    buffer, and one batched matrix product scores a group of tiles against their blocks. Keys outside the
    frame or the window get ``-inf``; :func:`column_topk` takes each query's top-k over all frames.

    Args:
        query: float ``[h, w, C]``, channels-last (the query frame).
        k: neighbours to keep per query position, jointly over the key frames.
        max_offset: the largest ``|di|`` or ``|dj|`` the window allows (``R``).
        window: ``"disk"`` (``di**2 + dj**2 < radius**2``) or ``"square"`` (``|di|, |dj| <= R``).
        radius: the window radius in grid cells.
        tile: side of the query tiles.
        scratch: work buffers to reuse (a fresh one when ``None``).
        max_scores: cap on the scores of one matrix product (memory and speed only; default
            ``MAX_SCORES`` per intra-op thread).
    """

    def __init__(
        self,
        query: torch.Tensor,
        k: int,
        max_offset: int,
        window: str,
        radius: float,
        tile: int,
        scratch: Scratch | None = None,
        max_scores: int | None = None,
    ):
        self.height, self.width, self.channels = query.shape
        self.k, self.window, self.radius = k, window, radius
        tile = min(tile, max(self.height, self.width))  # a tile larger than the grid only adds padding
        self.r, self.tile = max_offset, tile
        self.bands = -(-self.height // tile)
        self.tiles_per_band = -(-self.width // tile)
        self.span = tile + 2 * max_offset
        self.scratch = scratch or Scratch()
        default = MAX_SCORES_GPU if query.device.type == "cuda" else MAX_SCORES * torch.get_num_threads()
        self.max_scores = max_scores or default
        padded = query.new_zeros(self.bands * tile, self.tiles_per_band * tile, self.channels)
        padded[: self.height, : self.width] = query
        # [bands, tiles, tile * tile, C]: the queries of every tile, contiguous
        self._queries = (
            padded.view(self.bands, tile, self.tiles_per_band, tile, self.channels)
            .permute(0, 2, 1, 3, 4)
            .reshape(self.bands, self.tiles_per_band, tile * tile, self.channels)
        )

    def __call__(self, keys: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Joint top-k over the windows of ``keys``.

        Args:
            keys: one float ``[h * w, C]`` per key frame, channels-last rows (row-major positions).

        Returns:
            values: float ``[h * w, k]``, dot products sorted descending, ``-inf`` where the windows hold
                fewer than ``k`` keys.
            frames: int64 ``[h * w, k]``, which of ``keys`` each neighbour is in (0 where ``-inf``).
            positions: int64 ``[h * w, k]``, key positions ``i * w + j`` (0 where ``-inf``).
        """
        h, w, r, t, span = self.height, self.width, self.r, self.tile, self.span
        tiles, channels, frames = self.tiles_per_band, self.channels, len(keys)
        per_tile = t * t * span * frames * span
        kk = min(self.k, span * frames * span)
        grids = [frame_keys.view(h, w, channels) for frame_keys in keys]
        # buffer [column, frame, row, C]: column c holds frame column c - r; row s of band b frame row b * t - r + s
        buffer = self.scratch.get("window_keys", (tiles * t + 2 * r, frames, span, channels), keys[0])
        values = keys[0].new_full((self.bands, tiles, t * t, self.k), float("-inf"), dtype=_score_dtype(keys[0]))
        flat = torch.zeros(self.bands, tiles, t * t, self.k, dtype=torch.long, device=keys[0].device)
        group = max(1, min(tiles, self.max_scores // per_tile))
        for band in range(self.bands):
            first_row = band * t - r
            lo, hi = max(0, first_row), min(h, first_row + span)
            for index, grid in enumerate(grids):
                buffer[r : r + w, index, lo - first_row : hi - first_row] = grid[lo:hi].transpose(0, 1)
            mask = _band_mask(
                t, r, self.window, self.radius, tiles, w, lo - first_row, hi - first_row, str(keys[0].device)
            )
            for start in range(0, tiles, group):
                stop = min(start + group, tiles)
                count = stop - start
                blocks = buffer.as_strided(
                    (count, span * frames * span, channels),
                    (t * frames * span * channels, channels, 1),
                    buffer.storage_offset() + start * t * frames * span * channels,
                )
                scores = self._scores(self._queries[band, start:stop], blocks)
                scores.view(count, t * t, span, frames, span).add_(mask[start:stop, :, :, None, :])
                top_values, top_flat = column_topk(scores.view(count * t * t, span, frames * span), kk)
                values[band, start:stop, :, :kk] = top_values.view(count, t * t, kk)
                flat[band, start:stop, :, :kk] = top_flat.view(count, t * t, kk)
        # flat = (column * frames + frame) * span + row inside each tile's rectangle, decoded all at once
        device = keys[0].device
        first_row = (torch.arange(self.bands, device=device) * t - r)[:, None, None, None]
        first_col = (torch.arange(tiles, device=device) * t - r)[None, :, None, None]
        row = first_row + flat % span
        col = first_col + torch.div(flat, frames * span, rounding_mode="floor")
        found = torch.isfinite(values)
        found_frames = torch.where(found, torch.div(flat, span, rounding_mode="floor") % frames, 0)
        positions = torch.where(found, row * w + col, 0)
        return self._unpad(values), self._unpad(found_frames), self._unpad(positions)

    def _scores(self, queries: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """Dot products of a group of tiles with their key blocks: ``[count, t * t, keys]`` (float32 for
        bfloat16 features: the products run in bfloat16, one tile at a time, as oneDNN would copy the
        overlapping blocks of a batched product, and the scores are widened for the masks and top-k)."""
        shape = (blocks.shape[0], queries.shape[1], blocks.shape[1])
        if queries.dtype != torch.bfloat16:
            scores = self.scratch.get("window_scores", shape, queries)
            return torch.bmm(queries, blocks.transpose(1, 2), out=scores)
        low = self.scratch.get("window_scores", shape, queries)
        for index in range(shape[0]):
            torch.mm(queries[index], blocks[index].T, out=low[index])
        scores = self.scratch.get("window_scores", shape, low.new_empty(0, dtype=torch.float32))
        return scores.copy_(low)

    def _unpad(self, per_tile: torch.Tensor) -> torch.Tensor:
        """``[bands, tiles, t*t, k]`` -> ``[h * w, k]`` in row-major grid order."""
        t = self.tile
        grid = per_tile.view(self.bands, self.tiles_per_band, t, t, self.k).permute(0, 2, 1, 3, 4)
        grid = grid.reshape(self.bands * t, self.tiles_per_band * t, self.k)
        return grid[: self.height, : self.width].reshape(-1, self.k)


@functools.lru_cache(maxsize=32)
def _band_mask(
    tile: int, r: int, window: str, radius: float, tiles: int, width: int, row_lo: int, row_hi: int, device: str
) -> torch.Tensor:
    """Additive mask ``[tiles, tile * tile, span, span]`` of one band: 0 where the key lies inside the
    frame and the query's window, -inf elsewhere. Keys are indexed ``[column, row]`` in each tile's
    ``span x span`` rectangle; ``row_lo .. row_hi - 1`` are the rectangle rows inside the frame."""
    span = tile + 2 * r
    u = torch.arange(tile)  # query row / column inside the tile
    s = torch.arange(span)  # key row / column inside the rectangle
    # [t (qrow), t (qcol), span (kcol), span (krow)]
    di = (s - r)[None, None, None, :] - u[:, None, None, None]
    dj = (s - r)[None, None, :, None] - u[None, :, None, None]
    allowed = window_allows(di, dj, window, radius)
    allowed = allowed & ((s >= row_lo) & (s < row_hi))[None, None, None, :]
    frame_col = torch.arange(tiles)[:, None] * tile - r + s[None, :]  # [tiles, span]
    col_inside = (frame_col >= 0) & (frame_col < width)
    allowed = allowed[None] & col_inside[:, None, None, :, None]  # [tiles, t, t, span, span]
    mask = torch.zeros(allowed.shape)
    mask[~allowed] = float("-inf")
    return mask.view(tiles, tile * tile, span, span).to(device)


def window_allows(di: torch.Tensor, dj: torch.Tensor, window: str, radius: float) -> torch.Tensor:
    """Whether a key at grid offset ``(di, dj)`` from its query lies in the window (bool, broadcast shape).

    ``"disk"``: Euclidean distance strictly less than ``radius`` (CRW). ``"square"``: ``|di| <= radius``
    and ``|dj| <= radius`` (DINO).
    """
    if window == "square":
        return (di.abs() <= radius) & (dj.abs() <= radius)
    return (di * di + dj * dj).double() < float(radius) ** 2


def global_topk(
    query: torch.Tensor,
    keys: Sequence[torch.Tensor],
    k: int,
    chunk: int,
    width: int,
    scratch: Scratch | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-query top-k over every position of unrestricted key frames, jointly, in chunks of queries.

    Args:
        query: float ``[n, C]``.
        keys: one float ``[m, C]`` per key frame (row-major grid positions, ``m`` a multiple of ``width``).
        k: neighbours to keep, jointly over the frames.
        chunk: query positions per matrix product (bounds memory to ``chunk x m`` scores).
        width: the grid width (the column length of :func:`column_topk`).
        scratch: work buffers to reuse.

    Returns:
        values: float ``[n, k]`` sorted descending (``-inf`` padding when there are fewer than ``k`` keys);
        frames: int64 ``[n, k]``, which of ``keys``; positions: int64 ``[n, k]`` key rows.
    """
    scratch = scratch or Scratch()
    n, m, frames = query.shape[0], keys[0].shape[0], len(keys)
    kk = min(k, m * frames)
    values = query.new_full((n, k), float("-inf"), dtype=_score_dtype(query))
    found_frames = torch.zeros((n, k), dtype=torch.long, device=query.device)
    positions = torch.zeros_like(found_frames)
    keys_t = (keys[0] if frames == 1 else torch.cat(list(keys), dim=0)).T
    chunk = max(1, chunk // frames)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        scores = scratch.get("global_scores", (stop - start, m * frames), query)
        torch.mm(query[start:stop], keys_t, out=scores)
        if scores.dtype != values.dtype:  # bfloat16 products, widened for the top-k
            scores = scratch.get("global_scores", scores.shape, values).copy_(scores)
        top_values, index = column_topk(scores.view(stop - start, m * frames // width, width), kk)
        values[start:stop, :kk] = top_values
        found_frames[start:stop, :kk] = torch.div(index, m, rounding_mode="floor")
        positions[start:stop, :kk] = index % m
    return values, found_frames, positions


def _score_dtype(features: torch.Tensor) -> torch.dtype:
    """Scores of bfloat16 features are kept in float32 (the top-k and its masks run faster there)."""
    return torch.float32 if features.dtype == torch.bfloat16 else features.dtype
