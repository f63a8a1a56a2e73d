"""How the frame loop of ``davis propagate`` uses the cores: thread plans on one sequence, same run.

    python tools/bench_frame_loop.py                       # car-shadow of davis16-mini, 2 threads
    python tools/bench_frame_loop.py --sequence blackswan --rounds 2

Plans (each runs the whole sequence through ``vos.frames.propagate_frames`` with the CRW defaults and the
embedded MobileNetV2 features.13 at stride 8, in this process, the plans taking turns ``--rounds`` times):

- ``sequential``: one stage after the other in the caller's thread, ``--threads`` intra-op threads;
- ``separate-cores``: features in a background thread (1 thread), one search worker (1 thread): the two
  stages on separate cores, as the loop ran before issue 17;
- ``search-workers``: features in a background thread, one single-threaded search worker per core
  (the default).

Reported per plan: frames/s (wall, best round) and CPU seconds per frame; the masks of every plan must be
those of ``sequential``. The record: ``--out`` (default benchmarks/bench_frame_loop.json).
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

PLANS = ("sequential", "separate-cores", "search-workers")


def run_plan(plan: str, frames, first, extractor, threads: int) -> tuple[float, float, list]:
    """Wall seconds, CPU seconds and the masks of one pass of ``plan``."""
    import torch

    from dense_retrieval.propagation import CRW
    from dense_retrieval.vos.frames import propagate_frames

    torch.set_num_threads(threads)
    options = {"sequential": {"ahead_frames": 0}, "separate-cores": {"search_workers": 1}, "search-workers": {}}
    began, began_cpu = time.perf_counter(), time.process_time()
    masks = [labels for _, labels in propagate_frames(iter(frames), first, extractor, CRW, **options[plan])]
    return time.perf_counter() - began, time.process_time() - began_cpu, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", default="car-shadow")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--davis-root", help="davis16-mini (default: $DENSE_RETRIEVAL_DAVIS_MINI or ../shared)")
    add_out_argument(parser, "bench_frame_loop")
    args = parser.parse_args()
    record = BenchmarkRecord("bench_frame_loop", args.out)
    import numpy as np

    from dense_retrieval.backbone.features import FeatureExtractor
    from dense_retrieval.backbone.networks import build_backbone
    from dense_retrieval.data.davis import DavisDataset
    from dense_retrieval.data.images import read_image
    from dense_retrieval.protocols import CRW
    from dense_retrieval.runtime import tune_allocator

    tune_allocator()
    candidates = (
        args.davis_root,
        os.environ.get("DENSE_RETRIEVAL_DAVIS_MINI"),
        ROOT.parent / "shared/data/davis16-mini",
    )
    root = next((Path(c) for c in candidates if c and (Path(c) / "JPEGImages").is_dir()), None)
    if root is None:
        sys.exit("davis16-mini not found: pass --davis-root or set DENSE_RETRIEVAL_DAVIS_MINI")
    inputs = davis_input(root, [args.sequence])
    print(f"input: {root}: {args.sequence}, {inputs['frames']} frames {inputs['sizes']}; {args.threads} threads",
          file=sys.stderr)  # fmt: skip
    warning = frame_size_warning(inputs["sizes"])
    if warning:
        print(warning, file=sys.stderr)
    extractor = FeatureExtractor(build_backbone(CRW.features.backbone("mobilenet_v2")),
                                 CRW.features.features(batch_size=1, device="cpu"))  # fmt: skip
    dataset = DavisDataset(root, year="2016")
    frames = [read_image(path, extractor.preprocessing.decode) for path in dataset.sequence(args.sequence).frames]
    first = dataset.first_frame_labels(args.sequence)
    run_plan("sequential", frames[:3], first, extractor, args.threads)  # warm-up: traces, allocator
    rows = {plan: {"wall_s": [], "cpu_s": []} for plan in PLANS}
    reference = None
    for _ in range(args.rounds):
        for plan in PLANS:
            wall, cpu, masks = run_plan(plan, frames, first, extractor, args.threads)
            rows[plan]["wall_s"].append(round(wall, 2))
            rows[plan]["cpu_s"].append(round(cpu, 2))
            reference = reference or masks
            rows[plan]["same_masks"] = all(np.array_equal(a, b) for a, b in zip(masks, reference, strict=True))
            print(f"  {plan}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
    for row in rows.values():
        row["frames_per_second"] = round(len(frames) / min(row["wall_s"]), 3)
        row["cpu_s_per_frame"] = round(min(row["cpu_s"]) / len(frames), 3)
    inputs.update(sequence=args.sequence, threads=args.threads, backbone="mobilenet_v2 features.13 stride 8, CRW")
    document = record.write(inputs, {"plans": rows})
    print(f"{args.sequence}, {len(frames)} frames, {args.threads} threads; load {document['load_average']}")
    for plan, row in rows.items():
        print(f"  {plan:<16} {row['frames_per_second']:.3f} frames/s  {row['cpu_s_per_frame']:.3f} CPU s/frame"
              f"  same masks: {row['same_masks']}")  # fmt: skip


if __name__ == "__main__":
    main()
