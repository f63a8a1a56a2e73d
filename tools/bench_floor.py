"""The floor of ``davis propagate``: the multiply-adds it cannot avoid against this machine's matrix-multiply rate.

    python tools/bench_floor.py                      # davis16-mini's sequence lengths, 854x480
    python tools/bench_floor.py --command-record benchmarks/bench_propagation.json

Multiply-adds (MACs) per frame, the CRW protocol with the defaults (embedded MobileNetV2 features.13,
output stride 8, 854x480 frames: a 60x107 grid of 96-d features):

- features: the network's MACs for one frame (``torch.utils.flop_counter``; depthwise convolutions
  included, although they run far below the matrix-multiply rate);
- affinity, the part the protocol needs: every query against the keys inside its window (radius 12,
  clipped at the frame's border) in each distinct short-term frame, and against every key of frame 0;
  the distinct frames grow from 1 to 20 over a sequence's first frames (CRW's copies of frame 0 count once);
- affinity as this toolkit computes it: whole tiles against their key rectangles (6x6 queries against
  28x28 keys per frame), the masked corners included.

Rates: ``torch.mm`` of 2048x2048 float32 matrices (MKL) with one thread and with every core, and in
bfloat16 (oneDNN) where the CPU has it; the best of ``--repeat``. The floor is the MACs of all of
davis16-mini's frames at the all-core float32 rate; the command's frames/s (from the record of
tools/bench_propagation.py) against the floor's is how far the command is from the limit. The record
(``--out``, default benchmarks/bench_floor.json) holds all of it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from benchrecord import BenchmarkRecord, add_out_argument  # noqa: E402

SEQUENCE_FRAMES = {"blackswan": 50, "car-shadow": 40, "libby": 49, "motocross-jump": 40}  # davis16-mini


def feature_macs(height: int, width: int) -> int:
    """MACs of the embedded MobileNetV2 features.13 at output stride 8 for one frame."""
    from torch.utils.flop_counter import FlopCounterMode

    from dense_retrieval.backbone.networks import build_backbone

    backbone = build_backbone(name="mobilenet_v2", layer="features.13", output_stride=8).for_inference()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        backbone(torch.zeros(1, 3, height, width).contiguous(memory_format=torch.channels_last))
    return counter.get_total_flops() // 2


def window_pairs(grid: tuple[int, int], radius: float) -> int:
    """(query, key) pairs of one frame pair inside CRW's disk window, clipped at the border."""
    from dense_retrieval.propagation.affinity import window_allows

    height, width = grid
    reach = math.ceil(radius)
    offsets = torch.arange(-reach, reach + 1)
    allowed = window_allows(offsets[:, None], offsets[None, :], "disk", radius)
    rows = torch.arange(height)[:, None] + offsets[None, :]
    cols = torch.arange(width)[:, None] + offsets[None, :]
    rows_in = ((rows >= 0) & (rows < height)).float()  # [h, offsets]
    cols_in = ((cols >= 0) & (cols < width)).float()  # [w, offsets]
    return int(torch.einsum("ia,jb,ab->", rows_in, cols_in, allowed.float()))


def tiled_pairs(grid: tuple[int, int], tile: int, reach: int) -> int:
    """(query, key) scores one frame pair costs in the toolkit's tiles (padding and corners included)."""
    height, width = grid
    return math.ceil(height / tile) * math.ceil(width / tile) * tile * tile * (tile + 2 * reach) ** 2


def distinct_frames(target: int, context: int = 20) -> int:
    """Distinct windowed context frames of frame ``target`` under CRW (copies of frame 0 count once)."""
    recent = min(target - 1, context)
    return recent + (1 if recent < context else 0)


def matmul_rate(dtype: torch.dtype, threads: int, repeat: int, size: int = 2048) -> float:
    """Best GMAC/s of ``torch.mm`` on ``size`` x ``size`` matrices."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        torch.mm(a, b)
        best = math.inf
        for _ in range(repeat):
            began = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - began)
        return size**3 / best / 1e9
    finally:
        torch.set_num_threads(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--repeat", type=int, default=5, help="timed products per rate (the best counts)")
    parser.add_argument("--command-record", type=Path, default=ROOT / "benchmarks" / "bench_propagation.json",
                        help="the record of tools/bench_propagation.py whose 'after' frames/s is compared")  # fmt: skip
    add_out_argument(parser, "bench_floor")
    args = parser.parse_args()
    record = BenchmarkRecord("bench_floor", args.out)
    from dense_retrieval.propagation import CRW
    from dense_retrieval.propagation.search import native_bfloat16

    grid = (math.ceil(args.height / 8), math.ceil(args.width / 8))
    hw, channels = grid[0] * grid[1], 96
    print(f"input: {args.width}x{args.height} frames (grid {grid[0]}x{grid[1]}), davis16-mini's lengths"
          f" {SEQUENCE_FRAMES}; MobileNetV2 features.13, stride 8; CRW", file=sys.stderr)  # fmt: skip
    features = feature_macs(args.height, args.width)
    window, tiles = window_pairs(grid, CRW.radius), tiled_pairs(grid, CRW.tile, CRW.max_offset)
    global_macs = hw * hw * channels
    targets = [t for frames in SEQUENCE_FRAMES.values() for t in range(1, frames)]
    frames = sum(SEQUENCE_FRAMES.values())
    needed = frames * features + sum(global_macs + distinct_frames(t) * window * channels for t in targets)
    computed = frames * features + sum(global_macs + distinct_frames(t) * tiles * channels for t in targets)
    cores = len(os.sched_getaffinity(0))
    rates = {"float32_1_thread": matmul_rate(torch.float32, 1, args.repeat),
             f"float32_{cores}_threads": matmul_rate(torch.float32, cores, args.repeat)}  # fmt: skip
    if native_bfloat16():
        rates["bfloat16_1_thread"] = matmul_rate(torch.bfloat16, 1, args.repeat)
        rates[f"bfloat16_{cores}_threads"] = matmul_rate(torch.bfloat16, cores, args.repeat)
    rate = rates[f"float32_{cores}_threads"]
    floor_s = needed / (rate * 1e9)
    results = {
        "macs_per_frame": {
            "features": features,
            "affinity_full_context_needed": global_macs + 20 * window * channels,
            "affinity_full_context_computed": global_macs + 20 * tiles * channels,
            "of_which_global_frame_0": global_macs,
        },
        "macs_davis16_mini": {"frames": frames, "needed": needed, "computed": computed},
        "matmul_gmac_per_s": {name: round(value, 1) for name, value in rates.items()},
        "floor": {
            "rate": f"float32, {cores} threads",
            "seconds": round(floor_s, 2),
            "frames_per_second": round(frames / floor_s, 2),
        },  # fmt: skip
    }
    if args.command_record.is_file():
        command = json.loads(args.command_record.read_text())
        after = command["results"]["end_to_end"]["after"]
        ratio = round(frames / floor_s / after["frames_per_second"], 2)
        results["command"] = {"record": str(args.command_record), "frames_per_second": after["frames_per_second"],
                              "floor_over_command": ratio}  # fmt: skip
    record.write({"frame_size": f"{args.width}x{args.height}", "grid": list(grid), "channels": channels,
                  "sequences": SEQUENCE_FRAMES, "protocol": "CRW defaults"}, results)  # fmt: skip
    per_frame = results["macs_per_frame"]
    needed_g, computed_g = (per_frame[f"affinity_full_context_{kind}"] / 1e9 for kind in ("needed", "computed"))
    print(f"MACs per frame: features {per_frame['features'] / 1e9:.2f} G, affinity (full context)"
          f" needed {needed_g:.2f} G, computed {computed_g:.2f} G")  # fmt: skip
    print("matrix-multiply rate, GMAC/s: " + ", ".join(f"{k} {v:.1f}" for k, v in results["matmul_gmac_per_s"].items()))
    print(f"floor on davis16-mini ({frames} frames): {floor_s:.1f} s, {frames / floor_s:.2f} frames/s")
    if "command" in results:
        print(f"command: {results['command']['frames_per_second']} frames/s: the floor is"
              f" {results['command']['floor_over_command']}x faster")  # fmt: skip


if __name__ == "__main__":
    main()
