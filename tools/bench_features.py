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
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.features import IMAGENET_MEAN, IMAGENET_STD, FeatureExtractor
from dense_retrieval.backbone.networks import build_backbone


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
    args = parser.parse_args()

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
