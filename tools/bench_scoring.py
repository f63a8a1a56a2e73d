"""Benchmark: DAVIS J&F scoring time of this toolkit against vos-benchmark, same masks, same processes.

    python tools/bench_scoring.py                 # davis16-mini + a perturbed prediction set
    python tools/bench_scoring.py --large         # 20 synthetic sequences x 70 frames at 854x480
    python tools/bench_scoring.py --davis-root D --results R --year 2016

Each scorer runs ``--repeat`` times per process count in a fresh interpreter (the two alternate);
the table shows the best wall time of the scoring call (pool start-up and PNG decoding included,
imports excluded), the best CPU time (user + system, workers included; steadier than wall time
when other jobs share the machine), the peak RSS of the largest process, the J&F both computed,
and the ratios vos-benchmark / ours.
vos-benchmark compares raw pixel values, so DAVIS-2016 predictions are written as 0/255 like the
annotations. It writes results.csv into the results folder; ours writes into a temporary folder.
The record (``--out``, default benchmarks/bench_scoring.json, or bench_scoring_large.json with
``--large``) names the DAVIS set scored (sequences, frames, frame sizes); frames that are not 854x480
(the README's figures) are said out loud.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "tools"))

from benchrecord import BenchmarkRecord, add_out_argument, davis_input, frame_size_warning  # noqa: E402

from dense_retrieval.data.davis import DavisDataset, write_image_set  # noqa: E402
from dense_retrieval.data.masks import write_label_png  # noqa: E402


def davis_mini_root() -> Path:
    """../shared/data/davis16-mini or $DENSE_RETRIEVAL_DAVIS_MINI."""
    for candidate in (
        os.environ.get("DENSE_RETRIEVAL_DAVIS_MINI"),
        PROJECT_ROOT.parent / "shared/data/davis16-mini",
    ):
        if candidate and (Path(candidate) / "JPEGImages").is_dir():
            return Path(candidate)
    sys.exit("davis16-mini not found: set DENSE_RETRIEVAL_DAVIS_MINI or pass --davis-root and --results")


def perturb(labels: np.ndarray, key: int) -> np.ndarray:
    """A deterministic corruption of ``labels`` uint8 [H, W]: erode, dilate, shift, or a dropped frame."""
    kind = key % 5
    if kind == 0:
        return cv2.erode(labels, np.ones((7, 7), np.uint8))
    if kind == 1:
        return cv2.dilate(labels, np.ones((9, 9), np.uint8))
    if kind == 2:
        return np.roll(labels, (key % 11 - 5, key % 17 - 8), axis=(0, 1))
    if kind == 3 and key % 3 == 0:
        return np.zeros_like(labels)  # the object was lost in this frame
    out = labels.copy()
    out[:, (key * 37) % labels.shape[1] :: 13] = 0  # thin stripes missing
    return out


def write_perturbed_results(dataset: DavisDataset, results: Path) -> int:
    """Write a perturbed prediction for every annotated frame of ``dataset``; returns the frame count."""
    count = 0
    for s, name in enumerate(dataset.sequences):
        for t, path in enumerate(dataset.sequence(name).annotations):
            labels = dataset.read_annotation(path)
            write_label_png(results / name / path.name, perturb(labels, 7 * s + t), binary=dataset.binary)
            count += 1
    return count


def make_large_set(source: Path, root: Path, sequences: int = 20, frames: int = 70) -> None:
    """A DAVIS-2016 layout of ``sequences`` x ``frames`` 854x480 frames tiled from davis16-mini.

    Sequence ``s`` replays (back and forth) the annotations of source sequence ``s % 4``, flipped
    and shifted depending on ``s``, so every sequence differs; frames are hard links to the JPEGs.
    """
    mini = DavisDataset(source, year="2016", split="val")
    names = []
    for s in range(sequences):
        src = mini.sequence(mini.sequences[s % len(mini.sequences)])
        name = f"synth{s:02d}-{src.name}"
        names.append(name)
        period = 2 * len(src.annotations) - 2
        for t in range(frames):
            k = t % period
            k = k if k < len(src.annotations) else period - k
            labels = mini.read_annotation(src.annotations[k])
            if (s // 4) % 2:
                labels = labels[:, ::-1]
            labels = np.roll(labels, 9 * (s // 4), axis=1)
            stem = f"{t:05d}"
            write_label_png(root / "Annotations/480p" / name / f"{stem}.png", labels, binary=True)
            jpg = root / "JPEGImages/480p" / name / f"{stem}.jpg"
            jpg.parent.mkdir(parents=True, exist_ok=True)
            os.link(src.frames[k], jpg)
    write_image_set(root, names, year="2016", split="val")


def _worker(args: argparse.Namespace) -> None:
    """Run one scorer once and print {seconds, cpu_seconds, peak_rss_mb, jf} as JSON (in a fresh interpreter).

    cpu_seconds: user + system time of this process and of its worker processes (reaped before reading).
    """
    import gc
    import io
    from contextlib import redirect_stdout

    if args.worker == "ours":
        from dense_retrieval.vos.davis_eval import run_davis_evaluation

        with tempfile.TemporaryDirectory() as out:
            before, start = os.times(), time.perf_counter()
            evaluation, _ = run_davis_evaluation(
                args.davis_root, args.results, out, args.year, args.set, processes=args.processes
            )
            seconds = time.perf_counter() - start
        jf = evaluation.global_scores["J&F-Mean"] * 100
    else:
        from vos_benchmark.benchmark import benchmark

        gt_root = Path(args.davis_root) / "Annotations/480p"
        before, start = os.times(), time.perf_counter()
        with redirect_stdout(io.StringIO()):
            global_jf, *_ = benchmark([str(gt_root)], [str(args.results)], num_processes=args.processes, verbose=False)
        seconds = time.perf_counter() - start
        jf = float(global_jf[0])
    gc.collect()  # vos-benchmark leaves its Pool to the garbage collector, which joins the workers
    after = os.times()
    cpu = sum(after[i] - before[i] for i in range(4))
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak / 1024, "jf": jf}))


def _run(scorer: str, args: argparse.Namespace, processes: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        scorer,
        "--processes",
        str(processes),
        "--davis-root",
        str(args.davis_root),
        "--results",
        str(args.results),
        "--year",
        args.year,
        "--set",
        args.set,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{scorer} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _bench(args: argparse.Namespace, frames: int) -> list[dict]:
    print(f"{frames} annotated frames, {args.davis_root} ({args.year}/{args.set}), best of {args.repeat}")
    columns = ["processes", "ours s", "vos s", "vos/ours", "ours cpu s", "vos cpu s", "cpu ratio"]
    columns += ["ours MB", "vos MB", "J&F ours", "J&F vos"]
    print("  ".join(f"{name:>10}" for name in columns))
    rows = []
    for processes in args.processes_list:
        runs: dict[str, list[dict]] = {"ours": [], "vos": []}
        for _ in range(args.repeat):  # interleaved, so load from other users hits both alike
            for scorer in runs:
                runs[scorer].append(_run(scorer, args, processes))
        wall = {scorer: min(r["seconds"] for r in rs) for scorer, rs in runs.items()}
        cpu = {scorer: min(r["cpu_seconds"] for r in rs) for scorer, rs in runs.items()}
        rss = {scorer: max(r["peak_rss_mb"] for r in rs) for scorer, rs in runs.items()}
        cells = [
            f"{processes}",
            f"{wall['ours']:.2f}",
            f"{wall['vos']:.2f}",
            f"{wall['vos'] / wall['ours']:.2f}x",
            f"{cpu['ours']:.2f}",
            f"{cpu['vos']:.2f}",
            f"{cpu['vos'] / cpu['ours']:.2f}x",
            f"{rss['ours']:.0f}",
            f"{rss['vos']:.0f}",
            f"{runs['ours'][0]['jf']:.3f}",
            f"{runs['vos'][0]['jf']:.3f}",
        ]
        print("  ".join(f"{cell:>10}" for cell in cells), flush=True)
        rows.append({"processes": processes, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss,
                     "jf": {scorer: found[0]["jf"] for scorer, found in runs.items()},
                     "vos_over_ours_wall": round(wall["vos"] / wall["ours"], 3)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis-root", type=Path, help="DAVIS root (default: davis16-mini)")
    parser.add_argument("--results", type=Path, help="results folder (default: a perturbed prediction set)")
    parser.add_argument("--year", default="2016")
    parser.add_argument("--set", default="val")
    parser.add_argument("--large", action="store_true", help="20 synthetic sequences x 70 frames at 854x480")
    parser.add_argument("--processes-list", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", choices=["ours", "vos"], help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    add_out_argument(parser, "bench_scoring")
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    if args.large and args.out.name == "bench_scoring.json":
        args.out = args.out.with_name("bench_scoring_large.json")
    record = BenchmarkRecord("bench_scoring", args.out)
    with tempfile.TemporaryDirectory(prefix="bench_scoring.") as tmp:
        tmp = Path(tmp)
        if args.results is None:
            if args.large:
                args.davis_root = tmp / "DAVIS"
                print("writing the large synthetic set ...", file=sys.stderr)
                make_large_set(davis_mini_root(), args.davis_root)
                args.year = "2016"
            elif args.davis_root is None:
                args.davis_root = davis_mini_root()
                args.year = "2016"
            args.results = tmp / "results"
            dataset = DavisDataset(args.davis_root, year=args.year, split=args.set)
            write_perturbed_results(dataset, args.results)
        dataset = DavisDataset(args.davis_root, year=args.year, split=args.set)
        frames = sum(len(dataset.sequence(name).annotations) for name in dataset.sequences)
        inputs = {**davis_input(args.davis_root, dataset.sequences), "year": args.year, "set": args.set}
        inputs.update(annotated_frames=frames, large=args.large, results=str(args.results), repeat=args.repeat)
        sizes = ", ".join(f"{count} at {size}" for size, count in inputs["sizes"].items())
        print(f"input: {len(dataset.sequences)} sequences, {inputs['frames']} frames ({sizes})", file=sys.stderr)
        warning = frame_size_warning(inputs["sizes"], what="DAVIS 480p")
        if warning:
            print(warning, file=sys.stderr)
        rows = _bench(args, frames)
        if args.large:
            inputs["root"] = "temporary: 20 x 70 frames tiled from " + str(davis_mini_root())
        record.write(inputs, {"rows": rows})


if __name__ == "__main__":
    main()
