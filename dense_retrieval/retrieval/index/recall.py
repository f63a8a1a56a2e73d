"""Recall of an approximate index against exact search, on a held-out sample of its own vectors.

Queries are stored vectors that were held out of training; each query's own id is left out of both the
exact and the approximate neighbours (as ``query --segment-id`` does), so recall measures how well the
index finds the *other* segments nearest to a segment. Exact neighbours come from
``faiss.contrib.exhaustive_search.knn_ground_truth``: a Flat index per block of vectors read from the
shard files (on the GPU when FAISS has one), so the collection is never in memory at once.

recall@1: the exact nearest neighbour is ranked first. recall@10: the fraction of the exact 10 nearest
neighbours found among the 10 returned (FAISS's "10-recall@10").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import faiss
import numpy as np
from faiss.contrib.exhaustive_search import knn_ground_truth


def exact_neighbours(queries: np.ndarray, blocks: Iterable[np.ndarray], k: int) -> np.ndarray:
    """int64 [Q, k]: ids of the exact top-``k`` inner-product neighbours over ``blocks`` (ids in block order)."""
    queries = np.ascontiguousarray(queries, np.float32)
    _, ids = knn_ground_truth(queries, blocks, k, metric_type=faiss.METRIC_INNER_PRODUCT)
    return ids


def leave_out(ids: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """int64 [Q, k]: each row of ``ids`` [Q, >= k + 1] without the query's own id ``own`` [Q]."""
    out = np.empty((len(ids), k), np.int64)
    for row, (found, me) in enumerate(zip(ids, own, strict=True)):
        out[row] = found[found != me][:k]
    return out


def recall_at(approx: np.ndarray, exact: np.ndarray) -> dict:
    """recall@1 and recall@k of ``approx`` [Q, k] against ``exact`` [Q, k] (see the module doc)."""
    k = exact.shape[1]
    hits = [len(np.intersect1d(a[a >= 0], e)) for a, e in zip(approx, exact, strict=True)]
    return {
        "recall_at_1": round(float(np.mean(approx[:, 0] == exact[:, 0])), 4),
        f"recall_at_{k}": round(float(np.mean(hits)) / k, 4),
    }


def measure_recall(
    search: Callable[[np.ndarray, int], np.ndarray],
    queries: np.ndarray,
    query_ids: np.ndarray,
    blocks: Iterable[np.ndarray],
    k: int = 10,
) -> dict:
    """Recall of ``search`` (queries float32 [Q, d], k -> ids int64 [Q, k]) on held-out stored vectors.

    Args:
        search: the approximate index's search.
        queries: float32 [Q, d], the stored vectors of ``query_ids``.
        query_ids: int64 [Q], their ids in the index.
        blocks: every stored vector, in id order, in blocks (float32 [b, d] each).
        k: neighbours compared.
    """
    exact = leave_out(exact_neighbours(queries, blocks, k + 1), query_ids, k)
    approx = leave_out(search(queries, k + 1), query_ids, k)
    return {"queries": len(queries), "k": k, **recall_at(approx, exact)}
