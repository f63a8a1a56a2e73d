"""Benchmark label propagation: the windowed kernels against the dense reference, and the whole command
before and after the speed work (issue 14), in one run.

    python tools/bench_propagation.py                    # both parts, car-shadow end to end
    python tools/bench_propagation.py --e2e-sequences all --e2e-repeat 2
    python tools/bench_propagation.py --e2e-sequences none --frames 3 --json   # kernels only

Kernels: each path runs in its own subprocess on a steady-state context of 21 distinct frames (random
L2-normalised features, random soft labels), the CRW settings (top-10, T=0.05, radius 12 on the 20
short-term frames, first frame global). Memory is the peak resident set (Linux VmHWM, reset through
/proc/self/clear_refs after the context exists) minus the resident set just before the first timed
frame: the working memory of a propagation step. Both paths hold the same 21 context frames
(``context MiB`` below, reported separately). The dense reference is dense_retrieval/propagation/reference.py.
The labels (grid argmax and 480x854 upsampled argmax) and the top-k selections must agree.
Times are the best of the timed frames, as wall-clock and as the process's CPU time (the steadier
figure on a shared machine). Workers use one torch thread by default (--threads), the same for both.

End to end: ``dense-retrieval davis propagate --year 2016 --sequences ...`` on davis16-mini (the
embedded MobileNetV2 features.13, stride 8, CRW), once with this checkout and once with the package as it
was at ``--before`` (default: main just before the speed work), exported with ``git archive`` into a
temporary folder and run from there: no old code stays in the package. The two commands alternate
``--e2e-repeat`` times with ``--e2e-threads`` threads (default: the cores available); frames/s is what
the command itself prints (sequence time: decoding, features, propagation, writing; imports and model
building excluded), wall time is the whole process. The masks of the two are compared pixel by pixel and
scored (J&F over the sequences run). Per-stage times come from a separate sequential pass in each tree
(one stage after the other, no overlap): decode, features, the propagation step split by operator
(matrix products = affinity; top-k, maxima, gathers = top-k; the rest), labels at frame size, write.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
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
    return {
        "path": args.path,
        "seconds": times,
        "cpu_seconds": cpu_times,
        "working_mib": peak - before,
        "context_mib": context_mib,
    }


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


BEFORE = "a86f4b4"
"""The revision the end-to-end run compares against: main just before issue 14's speed work (the same CLI,
the previous propagation kernels and feature extraction). Exported with ``git archive``; nothing of it is
kept in the package."""

AFFINITY_OPS = ("aten::bmm", "aten::mm", "aten::matmul", "aten::addmm", "aten::baddbmm")
TOPK_OPS = ("aten::topk", "aten::amax", "aten::gather", "aten::sort", "aten::searchsorted", "aten::cumsum")


def _davis_root(given: str | None) -> Path:
    for candidate in (given, os.environ.get("DENSE_RETRIEVAL_DAVIS_MINI"), ROOT.parent / "shared/data/davis16-mini"):
        if candidate and (Path(candidate) / "JPEGImages").is_dir():
            return Path(candidate)
    sys.exit("davis16-mini not found: pass --davis-root or set DENSE_RETRIEVAL_DAVIS_MINI")


def _export(revision: str, dest: Path) -> Path:
    """The package as it was at ``revision``: ``git archive`` of the checkout, unpacked into ``dest``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision], capture_output=True)
    if archive.returncode != 0:
        sys.exit(f"cannot export {revision} with git archive: {archive.stderr.decode().strip()}")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _env(tree: Path, threads: int) -> dict:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {**os.environ, "PYTHONPATH": str(tree), **{name: str(threads) for name in names}}


def _propagate(tree: Path, root: Path, sequences: list[str], out: Path, threads: int) -> dict:
    """``davis propagate`` of one tree, as a user runs it: frames/s as the command prints it, process wall time."""
    command = [sys.executable, "-m", "dense_retrieval", "davis", "propagate", "--davis-root", str(root)]
    command += ["--year", "2016", "--sequences", ",".join(sequences), "--out", str(out), "--json"]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=tree, env=_env(tree, threads))
    wall = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"davis propagate failed in {tree}:\n{done.stderr}")
    report = json.loads(done.stdout)
    return {"frames_per_second": report["frames_per_second"], "frames": report["frames_propagated"], "wall_s": wall}


def _compare_masks(before: Path, after: Path, sequences: list[str]) -> dict:
    """Pixel by pixel: how many mask pixels differ between the two result folders."""
    import numpy as np
    from PIL import Image

    pixels = differing = frames = frames_differing = 0
    for name in sequences:
        for path in sorted((before / name).glob("*.png")):
            a = np.asarray(Image.open(path))
            b = np.asarray(Image.open(after / name / path.name))
            changed = int((a != b).sum())
            pixels, differing, frames = pixels + a.size, differing + changed, frames + 1
            frames_differing += changed > 0
    return {"frames": frames, "pixels": pixels, "pixels_differing": differing, "frames_differing": frames_differing}


def _jf(root: Path, sequences: list[str], results: Path, work: Path) -> float:
    """Mean J&F of ``results`` over exactly ``sequences`` (a DAVIS view listing only them), this tree's scorer."""
    view = work / f"view-{results.name}"
    if not view.exists():
        for kind in ("JPEGImages", "Annotations"):
            (view / kind / "480p").mkdir(parents=True)
            for name in sequences:
                (view / kind / "480p" / name).symlink_to(root / kind / "480p" / name)
        (view / "ImageSets" / "2016").mkdir(parents=True)
        (view / "ImageSets" / "2016" / "val.txt").write_text("".join(f"{name}\n" for name in sequences))
    command = [sys.executable, "-m", "dense_retrieval", "davis", "evaluate", "--davis-root", str(view)]
    command += ["--results", str(results), "--year", "2016", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_env(ROOT, 1), check=True)
    return float(json.loads(done.stdout)["global"]["J&F-Mean"])


def stages_worker(args: argparse.Namespace) -> dict:
    """Per-stage times of one tree, the stages one after the other: decode, features, affinity, top-k, the
    rest of a propagation step, labels at frame size, write. Runs inside the tree (PYTHONPATH)."""
    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    from dense_retrieval.backbone.config import BackboneConfig, FeatureConfig
    from dense_retrieval.backbone.features import FeatureExtractor
    from dense_retrieval.backbone.networks import build_backbone
    from dense_retrieval.data.davis import DavisDataset
    from dense_retrieval.data.images import read_image
    from dense_retrieval.data.masks import write_label_png
    from dense_retrieval.propagation import CRW, LabelPropagator, grid_to_labels, labels_to_grid

    try:  # what the command line does first in the trees that have it
        from dense_retrieval.runtime import tune_allocator

        tune_allocator()
    except ImportError:
        pass
    torch.set_num_threads(args.threads)
    dataset = DavisDataset(args.davis_root, year="2016")
    backbone = build_backbone(BackboneConfig("mobilenet_v2", "features.13", 8, "remove", "default"))
    extractor = FeatureExtractor(backbone, FeatureConfig(l2_normalize=True, batch_size=1, device="cpu"))
    seconds = dict.fromkeys(("decode", "features", "propagation", "labels", "write"), 0.0)
    op_seconds = {"affinity": 0.0, "top-k": 0.0, "other propagation": 0.0}
    frames = 0
    out = Path(args.out)
    for name in args.sequences.split(","):
        first = np.asarray(dataset.first_frame_labels(name))
        features, propagator = [], LabelPropagator(CRW)
        for index, path in enumerate(dataset.sequence(name).frames):
            began = time.perf_counter()
            frame = read_image(path)
            seconds["decode"] += time.perf_counter() - began
            began = time.perf_counter()
            maps = extractor.forward_batch([frame])[0]
            seconds["features"] += time.perf_counter() - began
            began = time.perf_counter()
            with torch.inference_mode():
                if index == 0:
                    propagator.start(maps, labels_to_grid(first, int(first.max()) + 1, tuple(maps.shape[1:])))
                    soft = None
                else:
                    soft = propagator.step(maps)
            seconds["propagation"] += time.perf_counter() - began
            began = time.perf_counter()
            labels = first if soft is None else grid_to_labels(soft, first.shape).to(torch.uint8).numpy()
            seconds["labels"] += time.perf_counter() - began
            began = time.perf_counter()
            write_label_png(out / f"{name}-{index:05d}.png", labels, binary=True)
            seconds["write"] += time.perf_counter() - began
            features.append(maps)
            frames += 1
        # the same steps again under the profiler: the share of matrix products and of top-k work
        propagator = LabelPropagator(CRW)
        with torch.inference_mode():
            propagator.start(features[0], labels_to_grid(first, int(first.max()) + 1, tuple(features[0].shape[1:])))
            with profile(activities=[ProfilerActivity.CPU]) as profiled:
                for maps in features[1:]:
                    propagator.step(maps)
        for event in profiled.key_averages():
            kind = (
                "affinity" if event.key in AFFINITY_OPS else "top-k" if event.key in TOPK_OPS else "other propagation"
            )
            op_seconds[kind] += event.self_cpu_time_total / 1e6
    shares = {kind: value / sum(op_seconds.values()) for kind, value in op_seconds.items()}
    ms = {kind: value / frames * 1e3 for kind, value in seconds.items()}
    per_frame = {"decode": ms["decode"], "features": ms["features"]}
    per_frame.update({kind: ms["propagation"] * share for kind, share in shares.items()})
    per_frame.update({"labels": ms["labels"], "write": ms["write"]})
    return {"frames": frames, "ms_per_frame": per_frame, "threads": args.threads}


def end_to_end(args: argparse.Namespace, work: Path) -> dict:
    """Before and after, same machine, same run: frames/s, masks pixel by pixel, J&F, stages."""
    root = _davis_root(args.davis_root)
    sequences = args.sequences.split(",") if args.sequences != "all" else _all_sequences(root)
    trees = {"before": _export(args.before, work / "before"), "after": ROOT}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for repeat in range(args.e2e_repeat):
        for name, tree in trees.items():
            runs[name].append(_propagate(tree, root, sequences, work / f"{name}-{repeat}", args.e2e_threads))
    best = {name: max(found, key=lambda run: run["frames_per_second"]) for name, found in runs.items()}
    masks = _compare_masks(work / "before-0", work / "after-0", sequences)
    jf = {name: _jf(root, sequences, work / f"{name}-0", work) for name in trees}
    stages = {}
    staged = sequences if args.stage_sequences == "same" else args.stage_sequences.split(",")
    for name, tree in trees.items() if args.stage_sequences != "none" else ():
        out = work / f"stages-{name}"
        out.mkdir()
        command = [sys.executable, str(Path(__file__).resolve()), "--path", "stages", "--out", str(out)]
        command += ["--davis-root", str(root), "--sequences", ",".join(staged), "--threads", str(args.e2e_threads)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=tree, env=_env(tree, args.e2e_threads))
        if done.returncode != 0:
            sys.exit(f"stage timing failed in {tree}:\n{done.stderr}")
        stages[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "before_revision": args.before,
        "sequences": sequences,
        "threads": args.e2e_threads,
        "repeats": args.e2e_repeat,
        "frames": best["after"]["frames"],
        "before": best["before"],
        "after": best["after"],
        "speedup": best["after"]["frames_per_second"] / best["before"]["frames_per_second"],
        "masks": masks,
        "jf": jf,
        "stages": stages,
        "stage_sequences": staged if stages else [],
        "load_average": os.getloadavg(),
    }


def _all_sequences(root: Path) -> list[str]:
    return (root / "ImageSets" / "2016" / "val.txt").read_text().split()


def _run(args: argparse.Namespace, path: str, out: Path) -> dict:
    command = [sys.executable, __file__, "--path", path, "--out", str(out)]
    for name in ("height", "width", "channels", "context", "labels", "frames", "threads"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    # a fixed mmap threshold: large tensors go back to the system when freed, so RSS is exact
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "1048576", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def kernels(args: argparse.Namespace) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in ("fast", "dense"):
            out = Path(tmp) / f"{path}.pt"
            results[path] = _run(args, path, out)
            results[path]["outputs"] = torch.load(out, weights_only=False)
        size = (args.height * 8, args.width * 8)
        agreement = compare(results["fast"]["outputs"], results["dense"]["outputs"], size)
    fast, dense = results["fast"], results["dense"]
    return {
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=60)
    parser.add_argument("--width", type=int, default=107)
    parser.add_argument("--channels", type=int, default=1024)
    parser.add_argument("--context", type=int, default=20)
    parser.add_argument("--labels", type=int, default=4)
    parser.add_argument("--frames", type=int, default=2, help="timed target frames per kernel path (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each kernel worker (same for both)")
    parser.add_argument("--e2e-sequences", default="car-shadow", help="davis16-mini sequences, 'all' or 'none'")
    parser.add_argument("--e2e-repeat", type=int, default=1, help="runs of each command, alternating; the best")
    parser.add_argument("--e2e-threads", type=int, default=None, help="threads of both commands (default: cores)")
    parser.add_argument(
        "--stage-sequences", default="same", help="sequences of the per-stage pass: 'same', names, or 'none'"
    )
    parser.add_argument("--before", default=BEFORE, help="the git revision to compare against")
    parser.add_argument("--davis-root", help="davis16-mini (default: $DENSE_RETRIEVAL_DAVIS_MINI or ../shared)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--path", choices=["fast", "dense", "stages"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--sequences", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        print(json.dumps(stages_worker(args) if args.path == "stages" else worker(args)))
        return
    args.e2e_threads = args.e2e_threads or len(os.sched_getaffinity(0))
    args.sequences = args.e2e_sequences
    summary = {"kernels": kernels(args) if args.frames else None, "end_to_end": None}
    if args.e2e_sequences != "none":
        with tempfile.TemporaryDirectory(prefix="bench-propagation-") as tmp:
            summary["end_to_end"] = end_to_end(args, Path(tmp))
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    if summary["kernels"]:
        _print_summary(args, summary["kernels"])
    if summary["end_to_end"]:
        _print_end_to_end(summary["end_to_end"])


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


def _print_end_to_end(e2e: dict) -> None:
    before, after, masks = e2e["before"], e2e["after"], e2e["masks"]
    print(
        f"end to end           davis propagate (CRW, mobilenet_v2 features.13 stride 8), {', '.join(e2e['sequences'])}:"
        f" {e2e['frames']} frames, {e2e['threads']} thread(s), best of {e2e['repeats']}"
    )
    print(
        f"  before ({e2e['before_revision']})    {before['frames_per_second']:.3f} frames/s"
        f"  (command {before['wall_s']:.1f} s)"
    )
    print(f"  after (this tree)   {after['frames_per_second']:.3f} frames/s  (command {after['wall_s']:.1f} s)")
    print(f"  speed-up            {e2e['speedup']:.2f}x")
    share = masks["pixels_differing"] / max(masks["pixels"], 1)
    print(
        f"  masks               {masks['pixels_differing']} of {masks['pixels']} pixels differ ({share:.1e}),"
        f" in {masks['frames_differing']} of {masks['frames']} frames; J&F before {e2e['jf']['before']:.4f},"
        f" after {e2e['jf']['after']:.4f}"
    )
    stages = e2e["stages"]
    if not stages:
        print(f"  load average at the end: {' '.join(f'{x:.2f}' for x in e2e['load_average'])}")
        return
    names = list(stages["after"]["ms_per_frame"])
    print(
        f"  ms per frame, the stages one after the other ({stages['after']['threads']} thread(s), no overlap),"
        f" {', '.join(e2e['stage_sequences'])}:"
    )
    print("  " + " " * 8 + "".join(f"{name:>19}" for name in names) + f"{'total':>8}")
    for which in ("before", "after"):
        row = stages[which]["ms_per_frame"]
        print(f"  {which:<8}" + "".join(f"{row[name]:>19.0f}" for name in names) + f"{sum(row.values()):>8.0f}")
    print(f"  load average at the end: {' '.join(f'{x:.2f}' for x in e2e['load_average'])}")


if __name__ == "__main__":
    main()
