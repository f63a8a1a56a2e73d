"""Benchmark: windowed label propagation vs the plain dense reference, same inputs, same run.

    python tools/bench_propagation.py                 # 60x107 grid, 1024-d, first frame + 20 previous
    python tools/bench_propagation.py --frames 3 --json
    python tools/bench_propagation.py --e2e-frames 0   # skip the end-to-end ResNet-50 run

Each path runs in its own subprocess on a steady-state context of 21 distinct frames (random
L2-normalised features, random soft labels), the CRW settings (top-10, T=0.05, radius 12 on the 20
short-term frames, first frame global). Memory is the peak resident set (Linux VmHWM, reset through
/proc/self/clear_refs after the context exists) minus the resident set just before the first timed
frame: the working memory of a propagation step. Both paths hold the same 21 context frames
(``context MiB`` below, reported separately). The dense reference is dense_retrieval/propagation/reference.py.
The labels (grid argmax and 480x854 upsampled argmax) and the top-k selections must agree.
Times are the best of the timed frames, as wall-clock and as the process's CPU time (the steadier
figure on a shared machine). Workers use one torch thread by default (--threads), the same for both.

End to end: frames/s of decoding, ResNet-50 layer3 at output stride 8 (stride removal, random weights:
speed does not depend on them), L2 normalisation, CRW propagation, upsampling and argmax over the
first --e2e-frames frames of davis16-mini (or synthetic 854x480 frames when it is absent).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from dense_retrieval.propagation import CRW, MemoryFrame, grid_to_labels, propagate_step  # noqa: E402


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
    return {
        "path": args.path,
        "seconds": times,
        "cpu_seconds": cpu_times,
        "working_mib": peak - before,
        "context_mib": context_mib,
    }


def compare(fast: list[dict], dense: list[dict], size: tuple[int, int]) -> dict:
    """Agreement of the two paths on every timed frame."""
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


def e2e_worker(args: argparse.Namespace) -> dict:
    """Frames/s of the whole pipeline: decode, backbone, propagation, upsampling, argmax (CRW protocol)."""
    from dense_retrieval.backbone.config import BackboneConfig, FeatureConfig
    from dense_retrieval.backbone.features import FeatureExtractor
    from dense_retrieval.backbone.networks import build_backbone
    from dense_retrieval.propagation import CRW
    from dense_retrieval.vos.frames import propagate_frames

    torch.set_num_threads(args.threads)
    frames, first = _e2e_frames(args.e2e_frames)
    layer = "layer3" if args.e2e_backbone.startswith("resnet") else "features.13"
    backbone = build_backbone(BackboneConfig(args.e2e_backbone, layer, 8, "remove", args.e2e_weights))
    extractor = FeatureExtractor(backbone, FeatureConfig(l2_normalize=True, batch_size=1, device="cpu"))
    stamps = [time.perf_counter()]
    for _ in propagate_frames(iter(frames), first, extractor, CRW):
        stamps.append(time.perf_counter())
    per_frame = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
    steady = per_frame[CRW.context + 1 :]  # once the context holds 21 distinct frames
    return {
        "backbone": backbone.describe(),
        "frames": len(per_frame),
        "frames_per_second": len(per_frame) / sum(per_frame),
        "steady_frames_per_second": len(steady) / sum(steady) if steady else None,
        "peak_rss_mib": _status_mib("VmHWM"),
    }


def _e2e_frames(count: int) -> tuple[list, object]:
    """``count`` real 854x480 DAVIS frames (davis16-mini when present, else synthetic) and the first mask."""
    import numpy as np

    from dense_retrieval.data.davis import DavisDataset
    from dense_retrieval.data.images import read_image
    from dense_retrieval.data.synth import make_synthetic_davis

    root = ROOT.parent / "shared" / "data" / "davis16-mini"
    year = "2016"
    if not (root / "JPEGImages").is_dir():
        root = Path(tempfile.mkdtemp()) / "synth"
        make_synthetic_davis(root, num_sequences=1, num_frames=count, size=(480, 854), seed=0)
        year = "2017"
    dataset = DavisDataset(root, year=year)
    frames: list = []
    for name in dataset.sequences:
        frames += [read_image(p) for p in dataset.sequence(name).frames]
        if len(frames) >= count:
            first = dataset.first_frame_labels(dataset.sequences[0])
            return frames[:count], np.asarray(first)
    return frames, np.asarray(dataset.first_frame_labels(dataset.sequences[0]))


def _run(args: argparse.Namespace, path: str, out: Path) -> dict:
    command = [sys.executable, __file__, "--path", path, "--out", str(out)]
    for name in ("height", "width", "channels", "context", "labels", "frames", "threads", "e2e_frames"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--e2e-backbone", args.e2e_backbone, "--e2e-weights", args.e2e_weights]
    # a fixed mmap threshold: large tensors go back to the system when freed, so RSS is exact
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "1048576"}
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=60)
    parser.add_argument("--width", type=int, default=107)
    parser.add_argument("--channels", type=int, default=1024)
    parser.add_argument("--context", type=int, default=20)
    parser.add_argument("--labels", type=int, default=4)
    parser.add_argument("--frames", type=int, default=2, help="timed target frames per path")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each worker (same for both)")
    parser.add_argument("--e2e-frames", type=int, default=24, help="frames of the end-to-end run (0: skip it)")
    parser.add_argument("--e2e-backbone", default="resnet50", help="resnet50 (layer3) or mobilenet_v2 (features.13)")
    parser.add_argument("--e2e-weights", default="random", help="weights of the end-to-end backbone (speed only)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--path", choices=["fast", "dense", "e2e"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        print(json.dumps(e2e_worker(args) if args.path == "e2e" else worker(args)))
        return

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in ("fast", "dense"):
            out = Path(tmp) / f"{path}.pt"
            results[path] = _run(args, path, out)
            results[path]["outputs"] = torch.load(out, weights_only=False)
        size = (args.height * 8, args.width * 8)
        agreement = compare(results["fast"]["outputs"], results["dense"]["outputs"], size)
        e2e = _run(args, "e2e", Path(tmp) / "e2e.json") if args.e2e_frames else None
    fast, dense = results["fast"], results["dense"]
    summary = {
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
        "end_to_end": e2e,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    _print_summary(args, summary)


def _print_summary(args: argparse.Namespace, summary: dict) -> None:
    s = summary
    print(
        f"grid {args.height}x{args.width}, {args.channels}-d, 1 + {args.context} context frames,"
        f" {args.threads} thread(s)"
    )
    print(
        f"wall time per frame  fast {s['fast_s_per_frame']:.2f} s  dense {s['dense_s_per_frame']:.2f} s"
        f"  speedup {s['speedup']:.1f}x"
    )
    print(
        f"CPU time per frame   fast {s['fast_cpu_s_per_frame']:.2f} s  dense {s['dense_cpu_s_per_frame']:.2f} s"
        f"  speedup {s['cpu_speedup']:.1f}x"
    )
    print(
        f"working memory       fast {s['fast_working_mib']:.0f} MiB  dense {s['dense_working_mib']:.0f} MiB"
        f"  ratio 1/{1 / s['working_memory_ratio']:.0f}"
    )
    print(
        f"with the context     both hold {s['context_mib']['fast']:.0f} MiB of context features:"
        f" ratio 1/{1 / s['total_memory_ratio']:.1f}"
    )
    print(
        f"identical labels     grid {s['grid_labels_equal']}, frame size {s['frame_labels_equal']};"
        f" max soft-label difference {s['max_soft_diff']:.1e}; top-k differs on {s['topk_mismatch_queries']} queries"
    )
    e2e = s["end_to_end"]
    if e2e:
        b = e2e["backbone"]
        steady = e2e["steady_frames_per_second"]
        print(
            f"end to end           {b['name']} {b['layer']} stride {b['stride']} ({b['weights']} weights), CRW,"
            f" {e2e['frames']} frames of 854x480: {e2e['frames_per_second']:.3f} frames/s"
            + (f" ({steady:.3f} once the context is full)" if steady else "")
            + f", peak RSS {e2e['peak_rss_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
