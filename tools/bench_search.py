"""The neighbour search of one real frame with its full context: exact float32 against certified bfloat16.

    python tools/bench_search.py                      # blackswan 30, car-shadow 35, motocross-jump 30
    python tools/bench_search.py --frames car-shadow:35 --repeat 5

For each target frame of davis16-mini (854x480, embedded MobileNetV2 features.13 at stride 8, CRW: frame 0
unrestricted + the 20 frames before in the radius-12 disk) the search (``propagation.find_neighbours``)
runs in this process at one thread, the variants taking turns ``--repeat`` times (the best counts):
``exact`` (float32 products), ``certified`` (bfloat16 products, 2k+8 candidates per query, float32
rescoring, the certificate; the default where the CPU has bfloat16), the certified search with other
candidate counts, and other tile sizes. Reported: CPU ms per frame, the queries left without a
certificate (searched again exactly), and whether the neighbours equal the exact search's (same positions,
scores within 1e-5). The record: ``--out`` (default benchmarks/bench_search.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from benchrecord import BenchmarkRecord, add_out_argument, davis_input, frame_size_warning  # noqa: E402


def _context(root: Path, extractor, sequence: str, target: int):
    from dense_retrieval.data.davis import DavisDataset
    from dense_retrieval.data.images import read_image
    from dense_retrieval.propagation import CRW
    from dense_retrieval.propagation.propagator import MemoryFrame, context_of

    paths = DavisDataset(root, year="2016").sequence(sequence).frames
    needed = sorted({0, *range(max(1, target - CRW.context), target + 1)})
    frames = {}
    for index in needed:
        image = read_image(paths[index], extractor.preprocessing.decode)
        frames[index] = MemoryFrame.from_maps(index, extractor.forward_batch([image])[0])
    return frames[target], [(frames[index], windowed) for index, windowed in context_of(target, CRW)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", nargs="+", default=["blackswan:30", "car-shadow:35", "motocross-jump:30"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--davis-root", help="davis16-mini (default: $DENSE_RETRIEVAL_DAVIS_MINI or ../shared)")
    add_out_argument(parser, "bench_search")
    args = parser.parse_args()
    record = BenchmarkRecord("bench_search", args.out)
    import torch

    import dense_retrieval.propagation.propagator as propagator
    import dense_retrieval.propagation.search as search
    from dense_retrieval.backbone.features import FeatureExtractor
    from dense_retrieval.backbone.networks import build_backbone
    from dense_retrieval.propagation import CRW
    from dense_retrieval.propagation.affinity import Scratch
    from dense_retrieval.protocols import CRW as CRW_PROTOCOL

    torch.set_num_threads(1)
    shared = ROOT.parent / "shared/data/davis16-mini"
    candidates = (args.davis_root, os.environ.get("DENSE_RETRIEVAL_DAVIS_MINI"), shared)
    root = next((Path(c) for c in candidates if c and (Path(c) / "JPEGImages").is_dir()), None)
    if root is None:
        sys.exit("davis16-mini not found: pass --davis-root or set DENSE_RETRIEVAL_DAVIS_MINI")
    if not search.native_bfloat16():
        sys.exit("this CPU has no native bfloat16 (AVX512-BF16 or AMX): the certified search is not used here")
    targets = [(spec.split(":")[0], int(spec.split(":")[1])) for spec in args.frames]
    inputs = davis_input(root, sorted({name for name, _ in targets}))
    inputs.update(targets=args.frames, grid="60x107", channels=96, threads=1, context="CRW: frame 0 + 20 frames")
    print(f"input: {root}: frames {', '.join(args.frames)} with their CRW context; {inputs['sizes']}", file=sys.stderr)
    warning = frame_size_warning(inputs["sizes"])
    if warning:
        print(warning, file=sys.stderr)
    extractor = FeatureExtractor(build_backbone(CRW_PROTOCOL.features.backbone("mobilenet_v2")),
                                 CRW_PROTOCOL.features.features(batch_size=1, device="cpu"))  # fmt: skip
    with torch.inference_mode():
        contexts = [_context(root, extractor, name, target) for name, target in targets]
    default_candidates = search.candidates
    variants = {"exact": (False, None, CRW.tile), "certified": (True, None, CRW.tile)}
    variants.update({f"certified, {n} candidates": (True, n, CRW.tile) for n in (20, 36)})
    variants.update({f"certified, tile {t}": (True, None, t) for t in (5, 8)})
    variants.update({f"exact, tile {t}": (False, None, t) for t in (5, 8)})
    doubtful: list[int] = []
    original_rows = search.exact_rows

    def counted_rows(query_rows, rows, *rest):
        doubtful.append(int(rows.numel()))
        return original_rows(query_rows, rows, *rest)

    search.exact_rows = counted_rows
    rows = {name: {"cpu_ms": [], "doubtful_queries": [], "same_as_exact": True} for name in variants}
    reference = {}
    scratch = Scratch()
    with torch.inference_mode():
        for _ in range(args.repeat):
            for name, (low, count, tile) in variants.items():
                propagator.use_low_precision = lambda query, low=low: low and query.dtype == torch.float32
                search.candidates = (lambda k, count=count: count) if count else default_candidates
                config = CRW.replace(tile=tile)
                spent, counts = 0.0, []
                for index, (memory, slots) in enumerate(contexts):
                    doubtful.clear()
                    began = time.process_time()
                    found = propagator.find_neighbours(memory.query, slots, config, scratch)
                    spent += time.process_time() - began
                    counts.append(sum(doubtful))
                    ids = torch.sort(found.frames * 10**6 + found.positions, dim=1).values
                    if name == "exact" and index not in reference:
                        reference[index] = (ids, found.scores)
                    same = torch.equal(ids, reference[index][0]) and torch.allclose(
                        found.scores, reference[index][1], atol=1e-5, rtol=0
                    )
                    rows[name]["same_as_exact"] &= bool(same)
                rows[name]["cpu_ms"].append(round(spent / len(contexts) * 1e3, 1))
                rows[name]["doubtful_queries"] = counts
    for row in rows.values():
        row["best_cpu_ms"] = min(row["cpu_ms"])
    exact = rows["exact"]["best_cpu_ms"]
    for row in rows.values():
        row["exact_over_this"] = round(exact / row["best_cpu_ms"], 3)
    document = record.write(inputs, {"variants": rows, "queries_per_frame": 60 * 107})
    print(f"{len(contexts)} frames, 1 thread, best of {args.repeat}; load {document['load_average']}")
    for name, row in rows.items():
        print(f"  {name:<28} {row['best_cpu_ms']:7.1f} CPU ms/frame  x{row['exact_over_this']:.2f}"
              f"  uncertified queries {row['doubtful_queries']}  same neighbours {row['same_as_exact']}")  # fmt: skip


if __name__ == "__main__":
    main()
