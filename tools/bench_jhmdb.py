"""Benchmark: time per JHMDB video under CRW's protocol, and the projected time of a whole test split.

    python tools/bench_jhmdb.py                                  # 4 synthetic videos of 40 frames at 320x240
    python tools/bench_jhmdb.py --jhmdb-root JHMDB --split 1     # real videos, when you have the dataset
    python tools/bench_jhmdb.py --videos 2 --frames 15 --backbone resnet18 --weights random

JHMDB's split-1 test set is 268 clips of 15-40 frames at 320x240 (CRW stretches them to 320x320: a 40x40
grid at stride 8). Without the dataset, a synthetic set of the same frame size and length stands in
(``synth jhmdb``): the time per video depends on the frame size, the length and the protocol, not on the
pictures. Measured in one run, on the same videos:

1. the whole `jhmdb propagate` per video (decode, features, propagation of 16 label channels, the joints'
   read-out, the JSON file: ``propagate_jhmdb_video``, as the command runs it), after one warm-up video;
2. the reference, right after each video on the same frames: the features alone (decode + network) on
   the threads the frame loop gives its feature stage (half of them; the other half propagates while
   the next frame is embedded), so the share the propagation adds is a ratio taken under the same load.

The projection is mean seconds per video x the split's video count (``--split-videos``, 268) on this
machine's threads. The record (tools/benchrecord.py) holds the inputs, frame sizes, grid, machine,
threads and load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import torch  # noqa: E402
from benchrecord import BenchmarkRecord, add_out_argument, frame_size_warning, image_sizes  # noqa: E402

from dense_retrieval.backbone.features import FeatureExtractor  # noqa: E402
from dense_retrieval.data.images import read_image  # noqa: E402
from dense_retrieval.data.jhmdb import JhmdbDataset  # noqa: E402
from dense_retrieval.data.synth import make_synthetic_jhmdb  # noqa: E402
from dense_retrieval.propagation.config import CRW_KEYPOINTS  # noqa: E402
from dense_retrieval.protocols import CRW_JHMDB  # noqa: E402
from dense_retrieval.runtime import stage_threads  # noqa: E402
from dense_retrieval.vos.jhmdb_run import propagate_jhmdb_video  # noqa: E402

JHMDB_FRAME_SIZE = (320, 240)  # width x height of JHMDB's frames
JHMDB_SPLIT1_TEST_VIDEOS = 268


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jhmdb-root", type=Path, help="a JHMDB root (default: a synthetic set in a temp folder)")
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--videos", type=int, default=4, help="videos timed (after one warm-up video)")
    parser.add_argument("--frames", type=int, default=40, help="frames per synthetic video (JHMDB: 15-40)")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--split-videos", type=int, default=JHMDB_SPLIT1_TEST_VIDEOS)
    parser.add_argument("--json", action="store_true", help="print the record on stdout")
    add_out_argument(parser, "bench_jhmdb")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    record = BenchmarkRecord("bench_jhmdb", args.out)
    work = Path(tempfile.mkdtemp(prefix="bench_jhmdb_"))
    root = args.jhmdb_root
    if root is None:
        root = work / "jhmdb"
        height, width = JHMDB_FRAME_SIZE[1], JHMDB_FRAME_SIZE[0]
        make_synthetic_jhmdb(root, num_videos=args.videos + 1, num_frames=args.frames, size=(height, width))
    dataset = JhmdbDataset(root, split=args.split)
    names = dataset.videos[: args.videos + 1]
    frames = [list(dataset.video(name).frames) for name in names]
    sizes = image_sizes(path for video in frames for path in video)
    warning = frame_size_warning(sizes["sizes"], JHMDB_FRAME_SIZE, "JHMDB")
    if warning:
        print(warning, file=sys.stderr)

    features = CRW_JHMDB.features_for(args.backbone)
    backbone = features.backbone(args.backbone, weights=args.weights)
    extractor = FeatureExtractor.build(backbone, features.features(device="cpu"))
    grid = extractor.grid_size(*read_image(frames[0][0]).shape[:2])

    per_video, feature_seconds, lengths = [], [], []
    for index, (name, video) in enumerate(zip(names, frames, strict=True)):  # the first one warms up
        result = propagate_jhmdb_video(
            dataset, name, work / "res", extractor, CRW_JHMDB.propagation, CRW_KEYPOINTS
        )  # what `jhmdb propagate` runs per video
        threads = torch.get_num_threads()
        torch.set_num_threads(stage_threads(threads)[0])  # as many threads as the loop gives its features
        started = time.perf_counter()  # the reference, right after on the same frames: the same load
        decoder = extractor.preprocessing.decode
        for _ in extractor.stream((read_image(path, decoder) for path in video), total=len(video)):
            pass
        torch.set_num_threads(threads)
        if index:
            per_video.append(round(result.seconds, 3))
            feature_seconds.append(time.perf_counter() - started)
            lengths.append(result.frames)

    mean = statistics.mean(per_video)
    results = {
        "seconds_per_video": {"mean": round(mean, 3), "median": round(statistics.median(per_video), 3)},
        "per_video_seconds": per_video,
        "frames_per_second": round(sum(lengths) / sum(per_video), 3),
        "features_only_seconds_per_video": round(statistics.mean(feature_seconds), 3),
        "features_only_threads": stage_threads(torch.get_num_threads())[0],
        "whole_run_over_features": round(sum(per_video) / sum(feature_seconds), 3),
        "projected_split": {
            "videos": args.split_videos,
            "hours": round(mean * args.split_videos / 3600, 3),
            "on": f"this machine, {torch.get_num_threads()} torch threads, CPU",
        },
        "gpu": "not measured: no GPU on this machine",
    }
    inputs = {
        "jhmdb_root": str(root.resolve()),
        "synthetic": args.jhmdb_root is None,
        "videos": {name: len(video) for name, video in zip(names, frames, strict=True)},
        "warm_up_video": names[0],
        "frame_sizes": sizes,
        "network_input": CRW_JHMDB.features.resize,
        "grid": list(grid),
        "backbone": extractor.describe()["backbone"],
        "protocol": {"name": CRW_JHMDB.name, "propagation": CRW_JHMDB.propagation.describe()},
        "size_warning": warning or None,
    }
    document = record.write(inputs=inputs, results=results)
    if args.json:
        print(json.dumps(document, indent=2, default=str))
        return
    print(
        f"{len(per_video)} videos of {statistics.mean(lengths):.0f} frames at {sizes['sizes']}, "
        f"grid {grid[0]}x{grid[1]}: "
        f"{mean:.2f} s per video (median {results['seconds_per_video']['median']:.2f}), "
        f"{results['frames_per_second']} frames/s; features alone {results['features_only_seconds_per_video']:.2f} s "
        f"(whole / features {results['whole_run_over_features']}x)\n"
        f"projected {args.split_videos} videos: {results['projected_split']['hours']:.2f} h on "
        f"{torch.get_num_threads()} CPU threads; no GPU figure (no GPU here)"
    )


if __name__ == "__main__":
    main()
