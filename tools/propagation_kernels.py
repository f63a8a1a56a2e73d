"""The kernels part of tools/bench_propagation.py: the windowed top-k against the dense reference.

Each path runs in its own process (``python tools/propagation_kernels.py --path fast|dense``) on a
steady-state context of 21 distinct frames of **random** L2-normalised features and random soft labels
(not real frames: a synthetic stand-in of the 60x107 grid that 854x480 frames give at stride 8), the CRW
settings (top-10, T=0.05, radius 12 on the 20 short-term frames, first frame global). Memory is the peak
resident set (Linux VmHWM, reset through /proc/self/clear_refs after the context exists) minus the
resident set just before the first timed frame: the working memory of a propagation step. Times are the
best of the timed frames, as wall-clock and as the process's CPU time. The labels (grid argmax and
upsampled argmax) and the top-k selections must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _status_mib(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1)) / 1024


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _features(seed: int, channels: int, height: int, width: int, channels_last: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    data = torch.randn(height * width, channels, generator=generator)
    data = torch.nn.functional.normalize(data, dim=1)
    if channels_last:
        return data
    return data.T.reshape(channels, height, width).contiguous()


def _labels(seed: int, num_labels: int, height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(10_000 + seed)
    logits = torch.randn(num_labels, height // 4 + 1, width // 4 + 1, generator=generator) * 4
    logits = torch.nn.functional.interpolate(logits[None], size=(height, width), mode="bilinear")[0]
    return torch.softmax(logits, dim=0)


def worker(args: argparse.Namespace) -> dict:
    """One path (``fast``: this toolkit; ``dense``: the reference) on the synthetic context."""
    from dense_retrieval.propagation import CRW, MemoryFrame, propagate_step

    torch.set_num_threads(args.threads)
    config = CRW.replace(context=args.context)
    c, h, w, n_labels = args.channels, args.height, args.width, args.labels
    start_mib = _status_mib("VmRSS")
    slots_frames = list(range(args.context + 1))  # first frame + `context` distinct previous frames
    restricted = [False] + [True] * args.context
    if args.path == "fast":
        frames = [
            MemoryFrame(i, _features(i, c, h, w, True), _labels(i, n_labels, h, w).permute(1, 2, 0).reshape(h * w, -1))
            for i in slots_frames
        ]
        slots = list(zip(frames, restricted, strict=True))
    else:
        from dense_retrieval.propagation.reference import dense_step, window_mask

        keys = [_features(i, c, h, w, False) for i in slots_frames]
        labels = [_labels(i, n_labels, h, w) for i in slots_frames]
        mask = window_mask(h, w, config)  # CRW caches its radius mask across videos
    context_mib = _status_mib("VmRSS") - start_mib
    outputs, times, cpu_times = [], [], []
    _reset_peak()
    before = _status_mib("VmRSS")
    for target in range(args.frames):
        query = _features(1000 + target, c, h, w, False)
        began, began_cpu = time.perf_counter(), time.process_time()
        if args.path == "fast":
            soft, neighbours = propagate_step(query, slots, config)
            dots = neighbours.scores
            picked = neighbours.frames * (h * w) + neighbours.positions
        else:
            soft, dots, index = dense_step(query, keys, labels, restricted, config, mask=mask)
            picked = index  # slot-major; slots are frames 0..context in order here
        times.append(time.perf_counter() - began)
        cpu_times.append(time.process_time() - began_cpu)
        outputs.append({"soft": soft, "dots": dots, "picked": picked})
        del query
    peak = _status_mib("VmHWM")
    torch.save(outputs, args.out)
    return {"path": args.path, "seconds": times, "cpu_seconds": cpu_times, "working_mib": peak - before,
            "context_mib": context_mib}  # fmt: skip


def compare(fast: list[dict], dense: list[dict], size: tuple[int, int]) -> dict:
    """Agreement of the two paths on every timed frame."""
    from dense_retrieval.propagation import grid_to_labels

    report = {"grid_labels_equal": True, "frame_labels_equal": True, "max_soft_diff": 0.0}
    report["topk_mismatch_queries"] = 0  # exact comparison: a float tie would show up here
    for a, b in zip(fast, dense, strict=True):
        report["max_soft_diff"] = max(report["max_soft_diff"], float((a["soft"] - b["soft"]).abs().max()))
        report["grid_labels_equal"] &= bool(torch.equal(a["soft"].argmax(0), b["soft"].argmax(0)))
        report["frame_labels_equal"] &= bool(
            torch.equal(grid_to_labels(a["soft"], size), grid_to_labels(b["soft"], size))
        )
        same = torch.sort(a["picked"], dim=1).values == torch.sort(b["picked"], dim=1).values
        report["topk_mismatch_queries"] += int((~same.all(dim=1)).sum())
    return report


def _run(args: argparse.Namespace, path: str, out: Path) -> dict:
    command = [sys.executable, __file__, "--path", path, "--out", str(out)]
    for name in ("height", "width", "channels", "context", "labels", "frames", "threads"):
        command += [f"--{name}", str(getattr(args, name))]
    # a fixed mmap threshold: large tensors go back to the system when freed, so RSS is exact
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "1048576", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def kernels(args: argparse.Namespace) -> dict:
    """Both paths, each in its own process, and their agreement."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in ("fast", "dense"):
            out = Path(tmp) / f"{path}.pt"
            results[path] = _run(args, path, out)
            results[path]["outputs"] = torch.load(out, weights_only=False)
        agreement = compare(results["fast"]["outputs"], results["dense"]["outputs"], (args.height * 8, args.width * 8))
    fast, dense = results["fast"], results["dense"]
    return {
        "input": "random L2-normalised features and random soft labels (synthetic, not frames)",
        "grid": [args.height, args.width],
        "channels": args.channels,
        "context_frames": args.context + 1,
        "threads": args.threads,
        "frames_timed": args.frames,
        "fast_s_per_frame": min(fast["seconds"]),
        "dense_s_per_frame": min(dense["seconds"]),
        "speedup": min(dense["seconds"]) / min(fast["seconds"]),
        "fast_cpu_s_per_frame": min(fast["cpu_seconds"]),
        "dense_cpu_s_per_frame": min(dense["cpu_seconds"]),
        "cpu_speedup": min(dense["cpu_seconds"]) / min(fast["cpu_seconds"]),
        "fast_working_mib": fast["working_mib"],
        "dense_working_mib": dense["working_mib"],
        "working_memory_ratio": fast["working_mib"] / dense["working_mib"],
        "context_mib": {"fast": fast["context_mib"], "dense": dense["context_mib"]},
        "total_memory_ratio": (fast["working_mib"] + fast["context_mib"])
        / (dense["working_mib"] + dense["context_mib"]),
        **agreement,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The kernel part's options (shared with tools/bench_propagation.py)."""
    parser.add_argument("--height", type=int, default=60)
    parser.add_argument("--width", type=int, default=107)
    parser.add_argument("--channels", type=int, default=1024)
    parser.add_argument("--context", type=int, default=20)
    parser.add_argument("--labels", type=int, default=4)
    parser.add_argument("--frames", type=int, default=0, help="timed target frames per kernel path (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each kernel worker (same for both)")


def print_summary(args: argparse.Namespace, s: dict) -> None:
    print(
        f"kernels: random features (synthetic), grid {args.height}x{args.width}, {args.channels}-d,"
        f" 1 + {args.context} context frames, {args.threads} thread(s)"
    )
    print(f"wall time per frame  fast {s['fast_s_per_frame']:.2f} s  dense {s['dense_s_per_frame']:.2f} s"
          f"  speedup {s['speedup']:.1f}x")  # fmt: skip
    print(f"CPU time per frame   fast {s['fast_cpu_s_per_frame']:.2f} s  dense {s['dense_cpu_s_per_frame']:.2f} s"
          f"  speedup {s['cpu_speedup']:.1f}x")  # fmt: skip
    print(f"working memory       fast {s['fast_working_mib']:.0f} MiB  dense {s['dense_working_mib']:.0f} MiB"
          f"  ratio 1/{1 / s['working_memory_ratio']:.0f}")  # fmt: skip
    print(f"with the context     both hold {s['context_mib']['fast']:.0f} MiB of context features:"
          f" ratio 1/{1 / s['total_memory_ratio']:.1f}")  # fmt: skip
    print(f"identical labels     grid {s['grid_labels_equal']}, frame size {s['frame_labels_equal']};"
          f" max soft-label difference {s['max_soft_diff']:.1e};"
          f" top-k differs on {s['topk_mismatch_queries']} queries")  # fmt: skip


if __name__ == "__main__":  # one path in its own process
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parser.add_argument("--path", choices=["fast", "dense"], required=True)
    parser.add_argument("--out", required=True)
    print(json.dumps(worker(parser.parse_args())))
