"""Top-k affinities between a query frame and one context frame, without the dense matrix.

A windowed (spatially restricted) context frame is handled in square query tiles: the keys a tile can
reach form a ``(tile + 2R) x (tile + 2R)`` rectangle of the key frame; one batched matrix product per
row of tiles gives every dot product inside those rectangles, an additive mask (0 or -inf) keeps the
disk or square window of each query, and a top-k per query follows. An unrestricted frame is one
matrix product per chunk of queries. At most ``tile**2 x (tile + 2R)**2`` scores per tile (one row of
tiles at a time) or ``query_chunk x h*w`` scores exist at once, instead of CRW's ``h*w x h*w`` per
context frame.
"""

from __future__ import annotations

import functools

import torch


class WindowedTopK:
    """Per-query top-k over the window of one query frame, for any number of key frames.

    The query grid is cut into ``tile x tile`` tiles (zero-padded to whole tiles). For one band of
    tiles (a row of tiles), the key rows the band can reach are copied once, column-major, into a
    buffer padded by ``R`` on every side; each tile's key rectangle (``S x S`` with ``S = tile + 2R``)
    is then a contiguous block of that buffer, and one batched matrix product per band scores every
    tile against its rectangle. Keys outside the frame or the window get ``-inf``.

    Args:
        query: float ``[h, w, C]``, channels-last (the query frame).
        k: neighbours to keep per query position (and per key frame).
        max_offset: the largest ``|di|`` or ``|dj|`` the window allows (``R``).
        window: ``"disk"`` (``di**2 + dj**2 < radius**2``) or ``"square"`` (``|di|, |dj| <= R``).
        radius: the window radius in grid cells.
        tile: side of the query tiles.
    """

    def __init__(self, query: torch.Tensor, k: int, max_offset: int, window: str, radius: float, tile: int):
        self.height, self.width, self.channels = query.shape
        self.k, self.window, self.radius = k, window, radius
        tile = min(tile, max(self.height, self.width))  # a tile larger than the grid only adds padding
        self.r, self.tile = max_offset, tile
        self.bands = -(-self.height // tile)
        self.tiles_per_band = -(-self.width // tile)
        self.span = tile + 2 * max_offset
        padded = query.new_zeros(self.bands * tile, self.tiles_per_band * tile, self.channels)
        padded[: self.height, : self.width] = query
        # [bands, tiles, tile * tile, C]: the queries of every tile, contiguous
        self._queries = (
            padded.view(self.bands, tile, self.tiles_per_band, tile, self.channels)
            .permute(0, 2, 1, 3, 4)
            .reshape(self.bands, self.tiles_per_band, tile * tile, self.channels)
        )

    def __call__(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k of one key frame.

        Args:
            keys: float ``[h * w, C]``, channels-last rows (row-major positions).

        Returns:
            values: float ``[h * w, k]``, dot products sorted descending, ``-inf`` where the window
                holds fewer than ``k`` keys.
            positions: int64 ``[h * w, k]``, key positions ``i * w + j`` (0 where ``-inf``).
        """
        h, w, r, t, span = self.height, self.width, self.r, self.tile, self.span
        tiles, channels = self.tiles_per_band, self.channels
        kk = min(self.k, span * span)
        grid = keys.view(h, w, channels)
        # buffer column c holds frame column c - r; row s of band b holds frame row b * t - r + s
        buffer = keys.new_zeros(tiles * t + 2 * r, span, channels)
        blocks = buffer.as_strided((tiles, span * span, channels), (t * span * channels, channels, 1))
        values = keys.new_empty(self.bands, tiles, t * t, self.k).fill_(float("-inf"))
        positions = torch.zeros(self.bands, tiles, t * t, self.k, dtype=torch.long, device=keys.device)
        col_of_block = torch.arange(tiles, device=keys.device)[:, None, None] * t - r
        for band in range(self.bands):
            first_row = band * t - r
            lo, hi = max(0, first_row), min(h, first_row + span)
            buffer[r : r + w, lo - first_row : hi - first_row] = grid[lo:hi].transpose(0, 1)
            scores = torch.bmm(self._queries[band], blocks.transpose(1, 2))  # [tiles, t*t, span*span]
            scores += _band_mask(
                t, r, self.window, self.radius, tiles, w, lo - first_row, hi - first_row, str(keys.device)
            )
            top_values, top_index = torch.topk(scores, kk, dim=2)
            rows = first_row + top_index % span
            cols = col_of_block + top_index // span
            found = torch.isfinite(top_values)
            values[band, :, :, :kk] = top_values
            positions[band, :, :, :kk] = torch.where(found, rows * w + cols, torch.zeros_like(rows))
        return self._unpad(values), self._unpad(positions)

    def _unpad(self, per_tile: torch.Tensor) -> torch.Tensor:
        """``[bands, tiles, t*t, k]`` -> ``[h * w, k]`` in row-major grid order."""
        t = self.tile
        grid = per_tile.view(self.bands, self.tiles_per_band, t, t, self.k).permute(0, 2, 1, 3, 4)
        grid = grid.reshape(self.bands * t, self.tiles_per_band * t, self.k)
        return grid[: self.height, : self.width].reshape(-1, self.k)


@functools.lru_cache(maxsize=256)
def _band_mask(
    tile: int, r: int, window: str, radius: float, tiles: int, width: int, row_lo: int, row_hi: int, device: str
) -> torch.Tensor:
    """Additive mask ``[tiles, tile * tile, span * span]`` of one band: 0 where the key lies inside the
    frame and the query's window, -inf elsewhere. Keys are indexed column-major in each tile's
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
    return mask.view(tiles, tile * tile, span * span).to(device)


def window_allows(di: torch.Tensor, dj: torch.Tensor, window: str, radius: float) -> torch.Tensor:
    """Whether a key at grid offset ``(di, dj)`` from its query lies in the window (bool, broadcast shape).

    ``"disk"``: Euclidean distance strictly less than ``radius`` (CRW). ``"square"``: ``|di| <= radius``
    and ``|dj| <= radius`` (DINO).
    """
    if window == "square":
        return (di.abs() <= radius) & (dj.abs() <= radius)
    return (di * di + dj * dj).double() < float(radius) ** 2


def global_topk(query: torch.Tensor, keys: torch.Tensor, k: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-query top-k over every position of an unrestricted key frame, in chunks of queries.

    Args:
        query: float ``[n, C]``.
        keys: float ``[m, C]``.
        k: neighbours to keep.
        chunk: queries per matrix product (bounds memory to ``chunk x m`` scores).

    Returns:
        values: float ``[n, k]`` sorted descending (``-inf`` padding when ``m < k``);
        positions: int64 ``[n, k]`` key rows.
    """
    n, m = query.shape[0], keys.shape[0]
    kk = min(k, m)
    values = torch.full((n, k), float("-inf"), dtype=query.dtype, device=query.device)
    positions = torch.zeros((n, k), dtype=torch.long, device=query.device)
    keys_t = keys.T
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        top_values, top_index = torch.topk(query[start:stop] @ keys_t, kk, dim=1)
        values[start:stop, :kk] = top_values
        positions[start:stop, :kk] = top_index
    return values, positions
