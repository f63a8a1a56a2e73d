"""Throughput of the feature-extraction pipeline vs the bare model forward on the same frames.

The pipeline is ``FeatureExtractor.stream``: uint8 RGB frames -> float tensors -> ImageNet
normalisation -> backbone -> L2 normalisation -> CPU features, batched. The bare forward is the same
backbone module called on plain NCHW tensors converted and normalised beforehand (outside the timing).
The pipeline hands the network channels-last tensors (faster oneDNN/cuDNN convolutions), so the
bare forward is also timed on channels-last copies: that ratio is the pipeline's own overhead.
Runs alternate (bare, bare channels-last, pipeline, ...) so machine noise hits both alike; the ratio of medians is
reported. Target: pipeline throughput >= 0.9x the bare forward.

    python tools/bench_features.py                      # ResNet-50 layer3, output stride 8, 480x854, CPU
    python tools/bench_features.py --frames 4 --repeats 3 --json

``--vits`` compares the pipeline's frames/s and peak memory on 480x854 frames for ResNet-50 layer3 at
output stride 8 (CRW's protocol: native frames) and DINO's ViT-S/16 and ViT-S/8 (DINO's protocol: frames
resized to 480x832, the last block's patch tokens), each in its own process (so that peak memory is its
own), in alternating rounds; ratios are against ResNet-50 measured in the same run:

    python tools/bench_features.py --vits --frames 2 --repeats 2

Frames are synthetic (random uint8, ``--height`` x ``--width``; speed does not depend on the content or
the weights). The record (``--out``, default benchmarks/bench_features.json, or bench_features_vits.json
with ``--vits``) holds the frame count and size, the backbones, grids and network inputs, the threads and
the machine; a size other than 480x854 (the README's figures) is said out loud.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchrecord import BenchmarkRecord, add_out_argument, frame_size_warning  # noqa: E402

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.features import FeatureExtractor
from dense_retrieval.backbone.networks import build_backbone
from dense_retrieval.backbone.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from dense_retrieval.protocols import CRW, DINO

# (backbone, layer, output stride, protocol) of the --vits comparison; the first is the reference
COMPARED = (
    ("resnet50", "layer3", 8, CRW),
    ("vit_small_patch16", None, None, DINO),
    ("vit_small_patch8", None, None, DINO),
)


def _bare_forward(backbone, tensors: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in tensors:
            backbone(batch)
    return time.perf_counter() - start


def _pipeline(extractor: FeatureExtractor, frames: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for _ in extractor.stream(frames):
        pass
    return time.perf_counter() - start


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _child(args: argparse.Namespace) -> dict:
    """One backbone under its protocol: pipeline frames/s (median of the repeats) and peak memory."""
    name, layer, stride, protocol = next(entry for entry in COMPARED if entry[0] == args.child)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone = build_backbone(name=name, layer=layer, output_stride=stride, weights="random")
    config = protocol.features_for(name).features(batch_size=args.batch_size, device=device)
    extractor = FeatureExtractor(backbone, config)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8) for _ in range(args.frames)]
    rss_before = _peak_rss_mb()
    _pipeline(extractor, frames[: args.batch_size])  # warm-up
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [_pipeline(extractor, frames) for _ in range(args.repeats)]
    input_size = extractor.input_size(args.height, args.width)
    return {
        "backbone": f"{name} {backbone.config.layer} stride {backbone.stride}",
        "protocol": protocol.name,
        "input_size": list(input_size),
        "grid": list(extractor.grid_size(args.height, args.width)),
        "fps": round(args.frames / statistics.median(times), 4),
        "runs_s": [round(t, 2) for t in times],
        "peak_rss_mb": round(_peak_rss_mb()),
        "rss_before_forward_mb": round(rss_before),
        "cuda_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
        "device": device,
        "threads": torch.get_num_threads(),
    }


def _compare(args: argparse.Namespace) -> dict:
    """Each backbone in its own process, in alternating rounds; frames/s and memory vs ResNet-50."""
    runs: dict[str, list[dict]] = {entry[0]: [] for entry in COMPARED}
    common = ["--frames", str(args.frames), "--repeats", str(args.repeats), "--batch-size", str(args.batch_size),
              "--height", str(args.height), "--width", str(args.width)]  # fmt: skip
    for _ in range(args.rounds):
        for name in runs:
            output = subprocess.run(
                [sys.executable, __file__, "--child", name, *common], check=True, capture_output=True, text=True
            ).stdout
            runs[name].append(json.loads(output))
    reference = statistics.median(run["fps"] for run in runs[COMPARED[0][0]])
    rows = []
    for results in runs.values():
        fps = statistics.median(run["fps"] for run in results)
        last = results[-1]
        rows.append({**last, "fps": round(fps, 4), "fps_over_resnet50": round(fps / reference, 3),
                     "peak_rss_mb": max(run["peak_rss_mb"] for run in results),
                     "forward_rss_mb": max(run["peak_rss_mb"] - run["rss_before_forward_mb"] for run in results),
                     "rounds_fps": [run["fps"] for run in results]})  # fmt: skip
    report = {"frame_size": [args.height, args.width], "batch_size": args.batch_size, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return report
    first = rows[0]
    print(f"{args.height}x{args.width} frames, batch {args.batch_size}, {first['threads']} threads, {first['device']}")
    print("| backbone (protocol) | network input | grid | frames/s | vs ResNet-50 | peak RSS | of which forward |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        size, grid = "x".join(map(str, row["input_size"])), "x".join(map(str, row["grid"]))
        print(f"| {row['backbone']} ({row['protocol']}) | {size} | {grid} | {row['fps']:.3f} | "
              f"{row['fps_over_resnet50']:.2f}x | {row['peak_rss_mb']} MB | {row['forward_rss_mb']} MB |")  # fmt: skip
    return report


def _frames_input(args: argparse.Namespace) -> dict:
    """The synthetic frames, said on stderr (with a warning when they are not 480x854)."""
    size = f"{args.width}x{args.height}"
    print(f"input: {args.frames} synthetic frames of {size} (random uint8), batch {args.batch_size}", file=sys.stderr)
    warning = frame_size_warning({size: args.frames}, what="DAVIS 480p")
    if warning:
        print(warning, file=sys.stderr)
    return {"frames": "synthetic random uint8", "count": args.frames, "sizes": {size: args.frames},
            "batch_size": args.batch_size, "weights": "random"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--layer", default="layer3")
    parser.add_argument("--output-stride", type=int, default=8)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--frames", type=int, default=4, help="frames per timed run")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed runs per path")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--vits", action="store_true", help="ResNet-50 layer3 OS8 vs ViT-S/16 and ViT-S/8 (DINO)")
    parser.add_argument("--rounds", type=int, default=2, help="--vits: alternating rounds of the three processes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    add_out_argument(parser, "bench_features")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    if args.out.name == "bench_features.json" and args.vits:
        args.out = args.out.with_name("bench_features_vits.json")
    record = BenchmarkRecord("bench_features", args.out)
    frames_input = _frames_input(args)
    if args.vits:
        report = _compare(args)
        record.write({**frames_input, "backbones": [row["backbone"] for row in report["rows"]]}, report)
        return

    torch.manual_seed(0)
    # speed does not depend on the weights; random ones keep the benchmark offline for every backbone
    backbone = build_backbone(name=args.backbone, layer=args.layer, output_stride=args.output_stride, weights="random")
    extractor = FeatureExtractor(backbone, FeatureConfig(batch_size=args.batch_size, l2_normalize=True, device="cpu"))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8) for _ in range(args.frames)]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    tensors = [
        (
            (torch.from_numpy(np.stack(frames[i : i + args.batch_size])).permute(0, 3, 1, 2).float() / 255 - mean) / std
        ).contiguous()  # the plain NCHW tensor a user would hand to the model
        for i in range(0, args.frames, args.batch_size)
    ]

    channels_last = [t.contiguous(memory_format=torch.channels_last) for t in tensors]

    _bare_forward(backbone, tensors[:1])  # warm-up (allocator, oneDNN kernels)
    _bare_forward(backbone, channels_last[:1])
    bare, bare_cl, pipeline = [], [], []
    for _ in range(args.repeats):
        bare.append(_bare_forward(backbone, tensors))
        bare_cl.append(_bare_forward(backbone, channels_last))
        pipeline.append(_pipeline(extractor, frames))
    bare_fps = args.frames / statistics.median(bare)
    bare_cl_fps = args.frames / statistics.median(bare_cl)
    pipeline_fps = args.frames / statistics.median(pipeline)
    report = {
        "backbone": f"{args.backbone} {args.layer} output stride {args.output_stride}",
        "frame_size": [args.height, args.width],
        "threads": torch.get_num_threads(),
        "bare_forward_fps": round(bare_fps, 3),
        "bare_forward_channels_last_fps": round(bare_cl_fps, 3),
        "pipeline_fps": round(pipeline_fps, 3),
        "pipeline_over_bare": round(pipeline_fps / bare_fps, 3),
        "pipeline_over_bare_channels_last": round(pipeline_fps / bare_cl_fps, 3),
        "runs": {
            "bare_s": [round(t, 2) for t in bare],
            "bare_channels_last_s": [round(t, 2) for t in bare_cl],
            "pipeline_s": [round(t, 2) for t in pipeline],
        },
    }
    grid = list(extractor.grid_size(args.height, args.width))
    record.write({**frames_input, "backbone": report["backbone"], "grid": grid}, report)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['backbone']}, {args.height}x{args.width}, batch {args.batch_size}, {report['threads']} threads")
    print(f"bare forward (NCHW tensors)          : {bare_fps:6.3f} frames/s")
    print(f"bare forward (channels-last tensors) : {bare_cl_fps:6.3f} frames/s")
    print(f"pipeline (uint8 frames -> features)  : {pipeline_fps:6.3f} frames/s")
    print(f"pipeline / bare NCHW                 : {report['pipeline_over_bare']:.3f}x (target >= 0.9x)")
    print(
        f"pipeline / bare channels-last        : {report['pipeline_over_bare_channels_last']:.3f}x (its own overhead)"
    )


if __name__ == "__main__":
    main()
