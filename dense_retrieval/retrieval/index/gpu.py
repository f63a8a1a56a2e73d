"""Search on GPUs when FAISS has them: the index sharded over every visible GPU.

``faiss.index_cpu_to_all_gpus`` with ``GpuMultipleClonerOptions.shard = True`` splits the stored vectors
over the GPUs (each holds 1/n of them; a query goes to all and the results are merged) instead of copying
the whole index to each; with one GPU the two are the same. Indexes with no GPU version (HNSW) and
indexes that do not fit in GPU memory stay on the CPU. With faiss-cpu this is the CPU index itself.
"""

from __future__ import annotations

import faiss


def gpu_count() -> int:
    """Visible GPUs FAISS can use (0 with faiss-cpu)."""
    if not hasattr(faiss, "index_cpu_to_all_gpus"):
        return 0
    return int(faiss.get_num_gpus())


def on_gpus(index: faiss.Index) -> faiss.Index:
    """``index`` sharded over all visible GPUs, or ``index`` itself when there are none or it cannot move."""
    gpus = gpu_count()
    if gpus == 0:
        return index
    options = faiss.GpuMultipleClonerOptions()
    options.shard = gpus > 1
    if hasattr(options, "common_ivf_quantizer"):
        options.common_ivf_quantizer = True  # IVF shards share one coarse quantizer instead of one copy each
    try:
        return faiss.index_cpu_to_all_gpus(index, co=options)
    except (RuntimeError, MemoryError):  # no GPU version (HNSW), or too large for GPU memory
        return index
