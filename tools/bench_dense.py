"""Benchmark patch memories of dense retrieval: 1e5, 1e6 and 1e7 patches, per FAISS factory, on CPU.

Every case goes through the memory build's own code (``retrieval/dense/memory_build.py``): a synthetic
patch source gives "images" of 32 x 32 patches whose features are clustered unit vectors
(``tools/bench_index.py``'s ``ClusteredData``: N/1000 clusters, each spread over a 32-d subspace) and
whose labels are random classes of 21, far more patches than extraction makes here; the extract stage
normalises them and writes shards (vectors, float16 soft labels, origins); then, per factory, the train,
encode and join stages (recall@30 of held-out patches recorded by the build) and the queries: fresh
points of the same distribution, in batches of 1024, read with k = 30 and temperature 0.02
(``retrieval/dense/readout.py``: search plus the label read-out). Reported per factory:

- build patches/s (train + encode + join, the shards written once per size: their rate is separate);
- query patches/s, and the same queries through a plain torch baseline in the same run: ``queries @
  vectors.T`` and ``topk`` over the memory's float32 vectors, read from the shard files in blocks of
  64k rows at a time (2048 queries x 64k scores: 0.5 GB), the same code at every size;
- recall@30 of those queries against exact search (the baseline's neighbours);
- peak memory per stage (VmRSS: resident including mapped file pages; RssAnon: allocated) and disk.

Each size runs in its own process (clean peaks). The 1e7 x 384 case is meant to stay within 8 GB of RAM:
its float32 vectors are 15.4 GB, so it runs on-disk inverted files only.

    nice -n 10 python tools/bench_dense.py                         # 1e5, 1e6, 1e7 at d=384
    python tools/bench_dense.py --sizes 100000 --dim 384 --threads 2
    python tools/bench_dense.py --sizes 10000000 --factories disk:IVF16384,SQ8 --workdir /big/disk
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchrecord import BenchmarkRecord, add_out_argument  # noqa: E402

GRID = 32  # patches per image side: a 512 input at stride 16
CLASSES = 21
NEIGHBOURS, TEMPERATURE, QUERY_BATCH = 30, 0.02, 1024
BASELINE_BLOCK = 65_536
DEFAULT_FACTORIES = {
    100_000: ["Flat", "IVF1024,Flat", "IVF1024,SQ8", "IVF1024,PQ48np"],
    1_000_000: ["Flat", "disk:IVF4096,Flat", "IVF4096,SQ8", "IVF4096,PQ48np"],
    10_000_000: ["disk:IVF4096,SQ8", "disk:IVF4096,PQ48np"],
}


class SyntheticPatches:
    """A patch source of ``n`` patches in images of GRID x GRID: clustered features, random labels."""

    def __init__(self, n: int, dim: int):
        from bench_index import ClusteredData

        self.data = ClusteredData(dim, clusters=max(10, n // 1000))
        self.dim = dim
        self.names = [f"synthetic-{i:07d}" for i in range(-(-n // (GRID * GRID)))]

    def batches(self, images):
        import torch

        from dense_retrieval.retrieval.dense.memory_build import PatchBatch

        for image in images:
            vectors = self.data.chunk(image, GRID * GRID)  # [P, D]
            rng = np.random.default_rng((7, image))
            labels = np.repeat(np.repeat(rng.integers(CLASSES, size=(GRID, GRID)), 2, 0), 2, 1)
            features = torch.from_numpy(vectors.T.reshape(self.dim, GRID, GRID).copy())
            yield PatchBatch(image, 0, features, torch.from_numpy(labels), (0, 0, 2 * GRID, 2 * GRID))


class Sampler:
    """Peak VmRSS / RssAnon of this process per stage (sampled every 20 ms in a thread)."""

    def __init__(self) -> None:
        from bench_scale import MemorySampler

        self.inner = MemorySampler()

    def __enter__(self):
        self.inner.__enter__()
        return self.inner

    def __exit__(self, *exc):
        self.inner.__exit__(*exc)


def run_size(n: int, dim: int, factories: list[str], workdir: Path, threads: int, queries: int) -> dict:
    """One size in this process: shards once, then each factory's build, queries, baseline, recall."""
    import faiss
    import torch

    from dense_retrieval.distributed import Ranks
    from dense_retrieval.retrieval.dense.memory import PatchMemory
    from dense_retrieval.retrieval.dense.memory_build import MemoryPlan, extract_shard, join_memory
    from dense_retrieval.retrieval.dense.readout import read_patches
    from dense_retrieval.retrieval.index.shards import Staging, offsets
    from dense_retrieval.retrieval.index.stages import IndexOptions, train_and_encode

    faiss.omp_set_num_threads(threads)
    torch.set_num_threads(threads)
    source = SyntheticPatches(n, dim)
    plan = MemoryPlan(CLASSES, None, 0, "float16", {"bench": "synthetic", "n": n, "dim": dim}, 2 * GRID, (GRID, GRID))
    base = workdir / f"memory-{n}-{dim}"
    staging = Staging(base, {"bench": n, "dim": dim})
    kept = staging.prepare()
    images = len(source.names)
    per_shard = max(1, -(-images // 8))
    count = -(-images // per_shard)
    result: dict = {"n": n, "dim": dim, "threads": threads, "vectors_gb": round(n * dim * 4 / 1e9, 2)}
    query_vectors = source.data.queries(queries)
    with Sampler() as memory:
        memory.mark("shards")
        started = time.perf_counter()
        for number in range(count):
            if staging.shard(number) is None:
                extract_shard(
                    staging, number, range(number * per_shard, min((number + 1) * per_shard, images)), source, plan
                )
        shards = staging.shards(count)
        total = int(offsets(shards)[-1])
        shard_seconds = time.perf_counter() - started
        result["patches"] = total
        result["shards"] = {
            "count": count,
            "seconds": round(shard_seconds, 1),
            "reused": kept,
            "patches_per_s": round(total / shard_seconds) if not kept else None,
        }
        memory.mark("baseline")
        baseline = _baseline(shards, query_vectors, threads)
        result["baseline"] = {k: v for k, v in baseline.items() if k != "ids"}
        result["factories"] = []
        for name in factories:
            on_disk = name.startswith("disk:")
            factory = name.removeprefix("disk:")
            out = workdir / f"{base.name}-{factory.replace(',', '_')}{'-disk' if on_disk else ''}"
            options = IndexOptions(factory=factory, on_disk=on_disk, recall_queries=1000)
            memory.mark(f"{name}:train+encode")
            started = time.perf_counter()
            record = train_and_encode(
                staging, shards, options, log=lambda message: print(f"  {message}", file=sys.stderr)
            )
            trained = time.perf_counter()
            memory.mark(f"{name}:join")
            report = join_memory(out, staging, shards, record, plan, on_disk, source.names, Ranks())
            built = time.perf_counter()
            memory.mark(f"{name}:query")
            with PatchMemory.open(out) as opened:
                seconds: dict = {}
                found = []
                for start in range(0, len(query_vectors), QUERY_BATCH):
                    block = query_vectors[start : start + QUERY_BATCH]
                    read_patches(opened, block, NEIGHBOURS, TEMPERATURE, seconds)  # timed: search + read-out
                    found.append(opened.search(block, NEIGHBOURS)[1])  # untimed: the ids, for recall
                ids = np.concatenate(found)
            hits = [len(np.intersect1d(a[a >= 0], e)) for a, e in zip(ids, baseline["ids"], strict=True)]
            result["factories"].append(
                {
                    "factory": factory,
                    "on_disk": on_disk,
                    "train_s": record.get("train_seconds"),
                    "train_encode_s": round(trained - started, 1),
                    "join_s": round(built - trained, 1),
                    "build_patches_per_s": round(total / (built - started)),
                    "index_bytes": report["index_bytes"],
                    "label_bytes": report["label_bytes"],
                    "disk_bytes": _folder_bytes(out),
                    "bytes_per_patch": round(_folder_bytes(out) / total, 1),
                    "search_params": report["search_params"],
                    "held_out_recall": report["recall"],
                    "query_patches": len(query_vectors),
                    "query_s": round(seconds["search"] + seconds["readout"], 3),
                    "query_patches_per_s": round(len(query_vectors) / (seconds["search"] + seconds["readout"])),
                    "search_s": round(seconds["search"], 3),
                    "readout_s": round(seconds["readout"], 3),
                    "speedup_vs_baseline": round(baseline["seconds"] / (seconds["search"] + seconds["readout"]), 2),
                    "recall_at_30": round(float(np.mean(hits)) / NEIGHBOURS, 4),
                }
            )
            print(f"  {name}: {json.dumps(result['factories'][-1])}", file=sys.stderr, flush=True)
            shutil.rmtree(out)
            for shard in shards:  # the next factory encodes afresh
                shutil.rmtree(shard.encoded, ignore_errors=True)
    result["peak_memory_gb"] = memory.report()
    staging.remove()
    return result


def _baseline(shards, queries: np.ndarray, threads: int) -> dict:
    """Exact top-30 by ``queries @ block.T`` + ``topk`` over blocks of the shard vectors (plain torch)."""
    import torch

    q = torch.from_numpy(queries)
    started = time.perf_counter()
    best_scores = torch.full((len(q), NEIGHBOURS), -float("inf"))
    best_ids = torch.zeros((len(q), NEIGHBOURS), dtype=torch.int64)
    offset = 0
    for shard in shards:
        for block in shard.blocks(BASELINE_BLOCK):
            scores = q @ torch.from_numpy(block).T
            top = scores.topk(min(NEIGHBOURS, scores.shape[1]), dim=1)
            merged = torch.cat([best_scores, top.values], 1)
            merged_ids = torch.cat([best_ids, top.indices + offset], 1)
            keep = merged.topk(NEIGHBOURS, dim=1)
            best_scores, best_ids = keep.values, merged_ids.gather(1, keep.indices)
            offset += len(block)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "patches_per_s": round(len(q) / seconds),
        "ids": best_ids.numpy(),
        "block_rows": BASELINE_BLOCK,
        "threads": threads,
    }


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(DEFAULT_FACTORIES))
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--factories", nargs="+", help="factories for every size ('disk:' prefix: on disk)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", type=int, default=4096, help="fresh query patches per factory")
    parser.add_argument("--workdir", type=Path, default=None, help="where shards and memories go (large)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size in this process
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    add_out_argument(parser, "bench_dense")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-dense-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.one:
        factories = args.factories or DEFAULT_FACTORIES.get(args.one, ["Flat"])
        result = run_size(args.one, args.dim, factories, workdir, args.threads, args.queries)
        args.result.write_text(json.dumps(result, indent=2, default=str))
        return
    record = BenchmarkRecord("bench_dense", args.out)
    results = []
    for n in args.sizes:
        partial = workdir / f"result-{n}.json"
        command = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--dim",
            str(args.dim),
            "--threads",
            str(args.threads),
            "--queries",
            str(args.queries),
            "--workdir",
            str(workdir),
            "--result",
            str(partial),
        ]
        if args.factories:
            command += ["--factories", *args.factories]
        print(f"size {n} x {args.dim}", file=sys.stderr, flush=True)
        done = subprocess.run(command)
        if done.returncode != 0:
            results.append({"n": n, "dim": args.dim, "failed": done.returncode})
            continue
        results.append(json.loads(partial.read_text()))
        partial.unlink()
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    inputs = {
        "kind": "synthetic clustered unit vectors (tools/bench_index.py ClusteredData)",
        "dim": args.dim,
        "sizes": args.sizes,
        "classes": CLASSES,
        "neighbours": NEIGHBOURS,
        "temperature": TEMPERATURE,
        "query_batch": QUERY_BATCH,
        "queries": args.queries,
        "threads": args.threads,
    }
    record.write(inputs=inputs, results={"sizes": results})


if __name__ == "__main__":
    main()
