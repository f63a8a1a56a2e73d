"""Benchmark: can the data pipeline feed the pretraining step? Images/s of each, and of both together.

    python tools/bench_pretrain.py                          # ours-cpu on davis16-mini (else bundled photos)
    python tools/bench_pretrain.py --workers 0 1 2 --steps 8 --json
    python tools/bench_pretrain.py --preset ours --batch-size 32 --steps 3     # the paper's crops, ResNet-50

Three figures, measured in one run on the same images and the same recipe:

1. step: images/s of the training step alone (forward with shuffle-BN and both losses, backward, SGD) on
   batches prepared beforehand: the reference the pipeline must keep up with;
2. pipeline (per worker count): images/s of the data pipeline alone (decode, 2 + 4 crops, constrained
   cropping, AutoAugment / MoCo v2 augmentations, tensors), the DataLoader iterated without training;
3. together (per worker count): images/s of the training loop fed by that pipeline, as the trainer runs it.

A worker count keeps the step fed when "together" reaches 90% of "step". Each figure is the median of
the timed batches after one warm-up batch. The machine's thread count and load are printed with the
figures; compare ratios, not absolute numbers, across machines. The record (``--out``, default
benchmarks/bench_pretrain.json) names the images (folders, count, sizes); images that are not 854x480
(the README's figure) are said out loud.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import torch  # noqa: E402
from benchrecord import BenchmarkRecord, add_out_argument, frame_size_warning, image_sizes  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from dense_retrieval.distributed import DistEnv  # noqa: E402
from dense_retrieval.pretrain.config import DEFAULT_WORKERS, get_preset  # noqa: E402
from dense_retrieval.pretrain.dataset import EpochSampler, MultiCropDataset  # noqa: E402
from dense_retrieval.pretrain.sizing import size_for_data  # noqa: E402
from dense_retrieval.pretrain.source import scan_sources  # noqa: E402
from dense_retrieval.pretrain.step import build_training_model, forward_backward, step_seed  # noqa: E402

DAVIS_MINI = ROOT.parent / "shared" / "data" / "davis16-mini"


def _data(path: str | None) -> list[Path]:
    if path:
        return [Path(path)]
    if (DAVIS_MINI / "JPEGImages").is_dir():
        return [DAVIS_MINI]
    import skimage.data

    from dense_retrieval.data.images import write_image

    folder = Path(tempfile.mkdtemp(prefix="bench_pretrain_"))
    for index, name in enumerate(("chelsea", "astronaut", "coffee", "rocket") * 16):
        write_image(folder / f"{index:03d}.jpg", getattr(skimage.data, name)())
    return [folder]


def _loader(dataset: MultiCropDataset, batch: int, workers: int, epoch: int = 0) -> DataLoader:
    sampler = EpochSampler(len(dataset), 1, 0, seed=0)
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=True, num_workers=workers)


def _batches(dataset: MultiCropDataset, batch: int, workers: int, count: int):
    """``count`` batches from one persistent loader, across as many epochs as needed."""
    sampler = EpochSampler(len(dataset), 1, 0, seed=0)
    loader = DataLoader(
        dataset, batch_size=batch, sampler=sampler, drop_last=True, num_workers=workers, persistent_workers=workers > 0
    )
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        for item in loader:
            yield item
            count -= 1
            if count == 0:
                return
        epoch += 1


def _rate(times: list[float], batch: int) -> float:
    return batch / statistics.median(times)


def bench_step(config, batches: list[dict], steps: int) -> float:
    built = build_training_model(config, DistEnv(), config.resolved_bn_splits(1))
    times = []
    for step in range(steps + 1):
        batch = batches[step % len(batches)]
        start = time.perf_counter()
        forward_backward(built.network, built.optimizer, batch["large"], batch["small"], step_seed(0, step), 0.4)
        built.optimizer.step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    return _rate(times, config.batch_size)


def bench_pipeline(dataset: MultiCropDataset, batch: int, workers: int, batches: int) -> float:
    times, tick = [], 0.0
    for index, _ in enumerate(_batches(dataset, batch, workers, batches + 2)):
        now = time.perf_counter()
        if index > 1:  # skip worker start-up and the first batch
            times.append(now - tick)
        tick = now
    return _rate(times, batch)


def bench_together(config, dataset: MultiCropDataset, workers: int, steps: int) -> float:
    built = build_training_model(config, DistEnv(), config.resolved_bn_splits(1))
    times, tick = [], 0.0
    for index, batch in enumerate(_batches(dataset, config.batch_size, workers, steps + 2)):
        forward_backward(built.network, built.optimizer, batch["large"], batch["small"], step_seed(0, index), 0.4)
        built.optimizer.step()
        now = time.perf_counter()
        if index > 1:
            times.append(now - tick)
        tick = now
    return _rate(times, config.batch_size)


def _announce(data: list[Path], source) -> dict:
    """The images the pipeline reads (folders, count, sizes from the headers), said on stderr."""
    found = image_sizes(sorted({item.path for item in source.items if item.frame is None}))
    video_frames = sum(1 for item in source.items if item.frame is not None)
    sizes = ", ".join(f"{count} at {size}" for size, count in sorted(found["sizes"].items()))
    print(
        f"input: {found['count']} images ({sizes}) and {video_frames} video frames from {', '.join(map(str, data))}",
        file=sys.stderr,
    )
    warning = frame_size_warning(found["sizes"], what="DAVIS 480p")
    if warning:
        print(warning, file=sys.stderr)
    return {"data": [str(path) for path in data], "images": found["count"], "sizes": found["sizes"],
            "video_frames": video_frames}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="ours-cpu")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--data", default=None, help="images, folders or a DAVIS root (default: davis16-mini)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=6, help="timed steps / batches per figure")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the training process")
    parser.add_argument("--json", action="store_true")
    add_out_argument(parser, "bench_pretrain")
    args = parser.parse_args()
    record = BenchmarkRecord("bench_pretrain", args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = get_preset(args.preset)
    if args.batch_size:
        config = replace(config, batch_size=args.batch_size, queue_size=max(config.batch_size, args.batch_size) * 8)
    data = _data(args.data)
    source = scan_sources(data)
    config, _ = size_for_data(config, len(source))  # the queue and neighbour count a run on this data gets
    inputs = _announce(data, source)
    dataset = MultiCropDataset(source, config)
    prepared = [next(iter(_loader(dataset, config.batch_size, 0, epoch=e))) for e in range(2)]
    step = bench_step(config, prepared, args.steps)
    rows = []
    for workers in args.workers:
        pipeline = bench_pipeline(dataset, config.batch_size, workers, args.steps)
        together = bench_together(config, dataset, workers, args.steps)
        rows.append(
            {
                "workers": workers,
                "pipeline_images_per_s": round(pipeline, 1),
                "together_images_per_s": round(together, 1),
                "pipeline_over_step": round(pipeline / step, 2),
                "together_over_step": round(together / step, 2),
                "fed": together >= 0.9 * step,
            }
        )
    crops = config.crops
    report = {
        "preset": args.preset,
        "arch": config.arch,
        "crops": f"{crops.large_crops}x{crops.large_size} + {crops.small_crops}x{crops.small_size}",
        "batch_size": config.batch_size,
        "images": len(source),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "step_images_per_s": round(step, 1),
        "default_workers": DEFAULT_WORKERS,
        "rows": rows,
    }
    record.write({**inputs, "preset": args.preset, "batch_size": config.batch_size}, report)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{report['preset']} ({report['arch']}, {report['crops']}, batch {report['batch_size']}), "
        f"{report['images']} images, {report['torch_threads']} torch threads, {report['cpus']} CPUs, "
        f"load {report['load_average']}"
    )
    print(f"training step alone: {report['step_images_per_s']} images/s")
    print("workers  pipeline img/s  x step  together img/s  x step  fed")
    for row in rows:
        print(
            f"{row['workers']:>7}  {row['pipeline_images_per_s']:>14}  {row['pipeline_over_step']:>6}  "
            f"{row['together_images_per_s']:>14}  {row['together_over_step']:>6}  {'yes' if row['fed'] else 'no'}"
        )
    print(f"default --workers: {DEFAULT_WORKERS}")


if __name__ == "__main__":
    main()
