"""Benchmark `retrieval eval-dense` end to end on a synthetic VOC set: time per stage, CPU time, mIoU.

A synthetic PASCAL VOC set in the trainaug layout (``synth voc --trainaug``: 200 memory images and 50
validation images at 512 x 512 by default) is evaluated by the Hummingbird protocol with the embedded
MobileNetV2 (features.13, stride 16: 32 x 32 patches per 512 input), once with its ImageNet weights and once
with random weights (``--weights random``), memory 1024 x 10^2 patches, 2 augmented passes, k = 30, an exact
Flat memory. Each run is the real command in a child process (``--json``); its wall time, its CPU time (the
child's user + system, all threads) and the report's time per stage are recorded, with the load average
around it (the machine may be shared: CPU time is the figure that does not depend on the others).

    python tools/bench_dense_eval.py                                  # 200 / 50 at 512, ImageNet vs random
    python tools/bench_dense_eval.py --train 40 --val 10 --size 256   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from benchrecord import BenchmarkRecord, add_out_argument, image_sizes  # noqa: E402


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str]) -> tuple[dict, float, float, list[float]]:
    """The command's JSON report, its wall and CPU seconds, the load average after it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cpu, started = _child_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dense_retrieval", *args], capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - started, _child_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), wall, cpu, [round(v, 2) for v in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--val", type=int, default=50)
    parser.add_argument("--size", type=int, default=512, help="image side of the synthetic set")
    parser.add_argument("--memory-size", default="102400")
    parser.add_argument("--weights", nargs="+", default=["default", "random"])
    parser.add_argument("--workdir", type=Path, default=None)
    add_out_argument(parser, "bench_dense_eval")
    args = parser.parse_args()
    record = BenchmarkRecord("bench_dense_eval", args.out)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-dense-eval-"))
    voc = workdir / "voc"
    started = time.perf_counter()
    if not voc.exists():
        command = ["synth", "voc", str(voc), "--train", str(args.train), "--val", str(args.val)]
        run_synth = subprocess.run(
            [sys.executable, "-m", "dense_retrieval", *command, "--size", str(args.size), "--trainaug", "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        if run_synth.returncode != 0:
            raise SystemExit(run_synth.stderr)
    synth_seconds = time.perf_counter() - started
    results = []
    for weights in args.weights:
        out = workdir / f"run-{weights}"
        shutil.rmtree(out, ignore_errors=True)
        command = ["retrieval", "eval-dense", "--root", str(voc), "--out", str(out), "--memory-size", args.memory_size]
        report, wall, cpu, load = run([*command, "--weights", weights, "--device", "cpu", "--json"])
        entry = {
            "weights": weights,
            "backbone": report["features"]["backbone"],
            "miou": round(report["miou"], 4),
            "miou_no_matching": round(report["miou_no_matching"], 4),
            "miou_present": round(report["miou_present"], 4),
            "per_class": {name: round(v["iou"], 4) for name, v in report["per_class"].items() if v["present"]},
            "memory": {
                k: report["memory"][k] for k in ("patches", "per_image", "factory", "index_bytes", "label_bytes")
            },
            "memory_build_seconds": report["memory"].get("build", {}).get("seconds"),
            "seconds_by_stage": report["seconds"],
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "cpu_s_in_command": report["cpu_seconds"],
            "torch_threads": report["torch_threads"],
            "load_after": load,
        }
        results.append(entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)
    inputs = {
        "dataset": "synthetic VOC (synth voc --trainaug)",
        "train_images": image_sizes(sorted((voc / "JPEGImages").glob("*.jpg"))[: args.train]),
        "val_images": args.val,
        "memory_size": args.memory_size,
        "protocol": "hummingbird (2 augmented passes, k=30, temperature 0.02, input 512, Hungarian mIoU)",
        "synth_seconds": round(synth_seconds, 1),
    }
    record.write(inputs=inputs, results={"runs": results})
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
