"""Benchmark indexes past one process: an on-disk IVF built from shards, memory-mapped search, the budget chooser.

Every case goes through the build's own code: shards written by ``ShardWriter`` (pooled vectors plus one
SQLite row per segment, as the extraction stage writes them), then ``index_from_shards`` with
``--max-memory`` (the factory chosen for the budget, trained once on a sample drawn from all shards, each
shard encoded, the parts joined, recall@1/@10 of held-out segments measured against exact search over the
shard files). The vectors are synthetic and clustered (``tools/bench_index.py``'s ``ClusteredData``: N/1000
clusters, each spread over a 32-dimensional subspace), generated in chunks and never all in memory. Each
case runs in its own process, so its peak memory is its own, per stage (shards, train, encode, join):

- VmRSS: resident memory, including pages of memory-mapped files (page cache the kernel can reclaim);
- RssAnon: memory the process allocated itself (what cannot be dropped).

On-disk cases are then searched by a fresh process that opens the index memory-mapped and answers 1, 10,
100 and 1000 queries (fresh points of the same distribution), reporting its memory after each against
the index size.

    python tools/bench_scale.py                           # 1e6 x 2048 on disk (3G), 1e5 x 2048 (256M, 48M), 1e7 x 32
    python tools/bench_scale.py --cases 100000:2048:256M  # N:D:BUDGET[:disk]
    python tools/bench_scale.py --json --out scale.json --workdir /big/disk
    python tools/bench_scale.py --extraction              # segments/s per CPU core of the extract stage
    python tools/bench_scale.py --extraction --backbones mobilenet_v2 --proposals kmeans --images 24  # the defaults

``--extraction`` times the extract stage of ``index build`` (features, proposals, pooling, shard writes)
on synthetic VOC images at the MaskContrast protocol's 512x512 with ground-truth proposals (or
``--proposals kmeans``, the default of ``index build``), one torch thread, for MobileNetV2 (embedded
weights, the default backbone) and ResNet-50 layer4 at output stride 8 (the paper's VOC setting; random
weights: the same computation as trained ones). It reports segments per CPU-second (process CPU time,
so contention with other processes does not inflate it) and per wall-second.

Every run writes its record (``--out``, default benchmarks/bench_scale.json, or
bench_scale_extraction.json with ``--extraction``): the cases (N, dimension, budget, shards; synthetic
vectors) or the images (count and sizes, network input), the machine, the threads and the results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep instead of spinning

from benchrecord import BenchmarkRecord, add_out_argument, image_sizes  # noqa: E402

DEFAULT_CASES = ["1000000:2048:3G:disk", "100000:2048:256M", "100000:2048:48M", "10000000:32:256M"]
CHUNK = 20_000


class MemorySampler:
    """Peak VmRSS / RssAnon / RssFile of this process per stage, sampled every 20 ms in a thread."""

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self) -> None:
        self.stage = "start"
        self.peaks: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> dict[str, int]:
        values = {}
        with open("/proc/self/status") as status:
            for line in status:
                key = line.split(":", 1)[0]
                if key in MemorySampler.FIELDS:
                    values[key] = int(line.split()[1]) * 1024
        return values

    def _sample(self) -> None:
        peak = self.peaks.setdefault(self.stage, dict.fromkeys(self.FIELDS, 0))
        for key, value in self.now().items():
            peak[key] = max(peak[key], value)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.02)

    def mark(self, stage: str) -> None:
        self._sample()
        self.stage = stage
        self._sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def report(self) -> dict:
        return {stage: {k: round(v / 1e9, 3) for k, v in peak.items()} for stage, peak in self.peaks.items()}


def parse_case(text: str) -> dict:
    parts = text.split(":")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "disk"):
        raise SystemExit(f"case {text!r}: expected N:D:BUDGET or N:D:BUDGET:disk")
    return {"n": int(float(parts[0])), "dim": int(parts[1]), "budget": parts[2], "on_disk": len(parts) == 4}


def run_case(case: dict, workdir: Path, shards: int, queries: int, threads: int) -> dict:
    """Build one index from shards with the chooser (in this process); stages, memory, size, recall."""
    import faiss
    from bench_index import ClusteredData

    from dense_retrieval.retrieval.index import index_config
    from dense_retrieval.retrieval.index.assemble import IndexOptions, index_from_shards
    from dense_retrieval.retrieval.index.shards import ShardWriter, Staging
    from dense_retrieval.retrieval.segments import SegmentRecord, encode_rle

    faiss.omp_set_num_threads(threads)
    n, dim = case["n"], case["dim"]
    data = ClusteredData(dim, clusters=max(10, n // 1000))
    mask = np.zeros((480, 640), bool)
    mask[100:260, 200:420] = True
    rle = encode_rle(mask)  # one mask for every row: rows of a realistic size, cheap to make
    features = {"backbone": {"name": "synthetic", "layer": "none", "weights": "none"}, "features": {}}
    config = index_config(features, "upsample", dim)
    out = workdir / f"index-{n}-{dim}-{case['budget']}"
    staging = Staging(out, {"bench": case})
    staging.prepare()
    timings: dict[str, float] = {}
    marks: dict[str, float] = {}
    with MemorySampler() as memory:
        memory.mark("shards")
        started = time.perf_counter()
        written, chunk_id, per_shard = [], 0, -(-n // shards)
        for number in range(shards):
            rows = min(per_shard, n - number * per_shard)
            writer = ShardWriter(staging.path, number, dim)
            for start in range(0, rows, CHUNK):
                vectors = data.chunk(chunk_id, min(CHUNK, rows - start))
                chunk_id += 1
                first = number * per_shard + start
                writer.add(
                    vectors,
                    [
                        SegmentRecord(f"/data/{(first + i) // 5:08d}.jpg", "kmeans", rle=rle)
                        for i in range(len(vectors))
                    ],
                )
            written.append(writer.finish({"images": [0, 0], "proposal_stats": {}}))
        timings["shards_s"] = round(time.perf_counter() - started, 1)

        def log(message: str) -> None:
            word = message.split()[0]
            marks[word] = time.perf_counter()
            memory.mark({"training": "train", "encoding": "encode", "joining": "join"}.get(word, memory.stage))
            print(f"  {message}", file=sys.stderr, flush=True)

        memory.mark("train")
        started = time.perf_counter()
        options = IndexOptions(max_memory=case["budget"], on_disk=case["on_disk"], recall_queries=queries)
        report = index_from_shards(staging, written, out, config, options, log=log)
        finished = time.perf_counter()
    staging.remove()
    if "encoding" in marks and "joining" in marks:
        timings["train_s"] = round(marks["encoding"] - started, 1)
        timings["encode_s"] = round(marks["joining"] - marks["encoding"], 1)
        timings["join_and_recall_s"] = round(finished - marks["joining"], 1)
    timings.update({f"join_{stage}_s": value for stage, value in report["join_seconds"].items()})
    metadata = sum(f.stat().st_size for f in out.iterdir() if f.name.startswith("segments.sqlite"))
    return {
        **case,
        "threads": threads,
        "shards": shards,
        "vectors_gb": round(n * dim * 4 / 1e9, 3),
        "factory": report["factory"],
        "budget_bytes": report["choice"]["budget_bytes"],
        "estimated_bytes": report["choice"]["estimated_bytes"],
        "index_bytes": report["index_bytes"],
        "within_budget": report["index_bytes"] <= report["choice"]["budget_bytes"],
        "bytes_per_vector": round(report["index_bytes"] / n, 1),
        "metadata_bytes_per_segment": round(metadata / n, 1),
        "search_params": report["search_params"],
        "recall": report["recall"],
        "timings": timings,
        "peak_memory_gb": memory.report(),
        "index": str(out),
    }


def search_case(index_path: Path, n: int, dim: int, threads: int) -> dict:
    """Open an index memory-mapped in this (fresh) process; its memory after 1, 10, 100, 1000 queries."""
    import faiss
    from bench_index import ClusteredData

    from dense_retrieval.retrieval.index import SegmentIndex

    faiss.omp_set_num_threads(threads)
    queries = ClusteredData(dim, clusters=max(10, n // 1000)).queries(1111)
    before = MemorySampler.now()
    rows = []
    with SegmentIndex.open(index_path) as index:
        opened = MemorySampler.now()
        size = index.index_bytes()
        used = 0
        for batch in (1, 10, 100, 1000):
            started = time.perf_counter()
            for start in range(used, used + batch, 10):
                index.search(queries[start : min(start + 10, used + batch)], 10)
            seconds = time.perf_counter() - started
            used += batch
            now = {f"{k}_gb": round(v / 1e9, 3) for k, v in MemorySampler.now().items()}
            rows.append({"queries_so_far": used, "ms_per_query": round(1e3 * seconds / batch, 2), **now})
    return {
        "index_bytes": size,
        "index_gb": round(size / 1e9, 3),
        "threads": threads,
        "before_open_gb": {k: round(v / 1e9, 3) for k, v in before.items()},
        "after_open_gb": {k: round(v / 1e9, 3) for k, v in opened.items()},
        "after_queries": rows,
    }


def extraction_case(name: str, images: int, workdir: Path, method: str = "gt") -> dict:
    """Segments per CPU-second of the extract stage: backbone ``name``, proposals ``method``, one torch thread."""
    import resource

    import torch

    from dense_retrieval.backbone.config import FeatureConfig
    from dense_retrieval.backbone.features import FeatureExtractor
    from dense_retrieval.backbone.networks import build_backbone
    from dense_retrieval.data.synth import make_synthetic_voc
    from dense_retrieval.retrieval.build import build_staged
    from dense_retrieval.retrieval.proposals import ProposalConfig

    torch.set_num_threads(1)
    root = workdir / "VOC2012"
    if not root.exists():
        make_synthetic_voc(root, num_train=images, num_val=1, size=(375, 500), seed=1)
    paths = sorted((root / "JPEGImages").glob("*.jpg"))[:images]
    settings = (
        {"name": name}
        if name == "mobilenet_v2"
        else {"name": name, "layer": "layer4", "output_stride": 8, "stride_mode": "dilate", "weights": "random"}
    )
    extractor = FeatureExtractor(build_backbone(**settings), FeatureConfig(resize="fixed:512x512", device="cpu"))
    proposals = ProposalConfig(method=method)
    extractor.extract([np.zeros((64, 64, 3), np.uint8)])  # warm-up
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    report = build_staged(paths, workdir / f"extract-{name}-{method}", extractor, proposals, overwrite=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return {
        "backbone": extractor.describe()["backbone"]["name"],
        "layer": extractor.describe()["backbone"]["layer"],
        "stride": extractor.stride,
        "dim": extractor.channels,
        "input": "512x512",
        "proposals": method,
        "images": len(paths),
        "segments": report["segments"],
        "torch_threads": 1,
        "cpu_seconds": round(cpu_seconds, 1),
        "wall_seconds": round(wall, 1),
        "segments_per_cpu_second": round(report["segments"] / cpu_seconds, 2),
        "images_per_cpu_second": round(len(paths) / cpu_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="N:D:BUDGET[:disk] (default: %(default)s)")
    parser.add_argument("--shards", type=int, default=8, help="shards per case (what torchrun ranks would write)")
    parser.add_argument("--recall-queries", type=int, default=1000, help="held-out segments recall is measured on")
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads")
    parser.add_argument("--workdir", type=Path, default=None, help="shards and indexes go here (~1.3x the vectors)")
    parser.add_argument("--keep", action="store_true", help="keep the indexes")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON document")
    add_out_argument(parser, "bench_scale")
    parser.add_argument("--extraction", action="store_true", help="measure the extract stage instead (see above)")
    parser.add_argument("--images", type=int, default=48, help="images for --extraction")
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2", "resnet50"], help="for --extraction")
    parser.add_argument("--proposals", default="gt", choices=["gt", "kmeans"], help="for --extraction")
    parser.add_argument("--run-case", help=argparse.SUPPRESS)
    parser.add_argument("--search", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_case:  # child process: one build
        case = json.loads(args.run_case)
        print(json.dumps(run_case(case, args.workdir, args.shards, args.recall_queries, args.threads)))
        return
    if args.search:  # child process: memory-mapped search
        spec = json.loads(args.search)
        print(json.dumps(search_case(Path(spec["index"]), spec["n"], spec["dim"], args.threads)))
        return

    if args.extraction and args.out.name == "bench_scale.json":
        args.out = args.out.with_name("bench_scale_extraction.json")
    record = BenchmarkRecord("bench_scale", args.out)
    workdir = Path(tempfile.mkdtemp(prefix="bench_scale_", dir=args.workdir))
    if args.extraction:
        try:
            rows = [extraction_case(name, args.images, workdir, args.proposals) for name in args.backbones]
            images = image_sizes(sorted((workdir / "VOC2012" / "JPEGImages").glob("*.jpg"))[: args.images])
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        log(f"input: {images['count']} synthetic VOC images {images['sizes']}, network input 512x512")
        inputs = {"images": "synthetic VOC", **images, "network_input": "512x512", "proposals": args.proposals}
        record.write({**inputs, "backbones": args.backbones, "torch_threads": 1}, {"rows": rows})
        print(json.dumps(rows, indent=2))
        return
    log(f"input: synthetic clustered vectors, cases {' '.join(args.cases)} ({args.shards} shards each)")
    results = []
    try:
        for text in args.cases:
            case = parse_case(text)
            log(f"case {text}: building")
            common = ["--threads", str(args.threads)]
            row = _child(
                [
                    "--run-case",
                    json.dumps(case),
                    "--workdir",
                    str(workdir),
                    "--shards",
                    str(args.shards),
                    "--recall-queries",
                    str(args.recall_queries),
                    *common,
                ]
            )
            if case["on_disk"]:
                log(f"case {text}: memory-mapped search")
                spec = {"index": row["index"], "n": case["n"], "dim": case["dim"]}
                row["search"] = {**_child(["--search", json.dumps(spec), *common]), "params": row["search_params"]}
            log(json.dumps(row))
            results.append(row)
            if not args.keep:
                shutil.rmtree(row["index"], ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    cases = [parse_case(text) for text in args.cases]
    inputs = {"vectors": "synthetic clustered (N/1000 clusters, 32-d subspaces)", "cases": cases}
    inputs.update(shards=args.shards, recall_queries=args.recall_queries, faiss_threads=args.threads)
    record.write(inputs, {"rows": results})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_tables(results)


def _child(arguments: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *arguments], stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_tables(rows: list[dict]) -> None:
    header = (
        "N x d",
        "budget",
        "chosen factory",
        "index bytes (<= budget)",
        "bytes/vector",
        "R@1",
        "R@10",
        "peak RssAnon GB (VmRSS)",
        "vectors GB",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        anon = max(p["RssAnon"] for p in r["peak_memory_gb"].values())
        rss = max(p["VmRSS"] for p in r["peak_memory_gb"].values())
        recall = r["recall"] or {}
        cells = (
            f"{r['n']:.0e} x {r['dim']}",
            r["budget"],
            r["factory"] + (" (on disk)" if r["on_disk"] else ""),
            f"{r['index_bytes']} ({'yes' if r['within_budget'] else 'NO'})",
            r["bytes_per_vector"],
            recall.get("recall_at_1"),
            recall.get("recall_at_10"),
            f"{anon} ({rss})",
            r["vectors_gb"],
        )
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for r in rows:
        if "search" not in r:
            continue
        s = r["search"]
        print(f"\nmemory-mapped search of {r['n']:.0e} x {r['dim']} ({s['index_gb']} GB index, {s['params']}):")
        print("| queries so far | ms/query | VmRSS GB | RssAnon GB | RssFile GB |")
        print("|---|---|---|---|---|")
        opened = s["after_open_gb"]
        print(f"| 0 (opened) | - | {opened['VmRSS']} | {opened['RssAnon']} | {opened['RssFile']} |")
        for q in s["after_queries"]:
            cells = (q["queries_so_far"], q["ms_per_query"], q["VmRSS_gb"], q["RssAnon_gb"], q["RssFile_gb"])
            print("| " + " | ".join(str(c) for c in cells) + " |")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
