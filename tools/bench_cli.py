"""Benchmark: how long users wait for the commands that need no network, against bare imports, same run.

    python tools/bench_cli.py                      # builds a ~300-segment index and a small DAVIS set first
    python tools/bench_cli.py --index IDX --repeat 7 --json

Each command runs ``--repeat`` times in a fresh interpreter, the commands taking turns; the table shows
the best and the median wall time of the whole process (interpreter start, imports, work, exit) and the
best as a ratio to ``python -c "import faiss"`` and ``python -c "import torch"`` measured the same way
in the same run. Commands: a query by stored segment (``query IDX --segment-id 3 -k 5 --json``), the
same query for 100 segments in one process (``query IDX --queries FILE``), ``index info``, ``davis
evaluate`` on davis16-mini (or a small synthetic set) with the annotations as results, ``checkpoints
list``. Targets (issue 14): a stored-segment query under 1.0 s; 100 queries under 2x one query.
Setup (not timed): the index is built from a synthetic VOC set with k-means proposals (5 per image),
and the package is byte-compiled (``compileall``) as an installed package is, so that an environment
with PYTHONDONTWRITEBYTECODE set does not recompile it in every process (``--no-compile``: leave it).
The record (``--out``, default benchmarks/bench_cli.json) names the index (segments, images) and the
DAVIS set ``davis evaluate`` scored (sequences, frames, frame sizes); a DAVIS set whose frames are not
854x480 (the synthetic stand-in when davis16-mini is absent) is said out loud.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "tools"))

from benchrecord import BenchmarkRecord, add_out_argument, davis_input, frame_size_warning  # noqa: E402


def _davis_mini() -> Path | None:
    for candidate in (os.environ.get("DENSE_RETRIEVAL_DAVIS_MINI"), PROJECT_ROOT.parent / "shared/data/davis16-mini"):
        if candidate and (Path(candidate) / "JPEGImages").is_dir():
            return Path(candidate)
    return None


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dense_retrieval", *map(str, args)]


def _setup(work: Path, index: Path | None, images: int, env: dict) -> tuple[Path, Path, Path, str, Path]:
    """The index, a 100-query file, a DAVIS root with results, its year; built when not given."""
    if index is None:
        voc = work / "voc"
        subprocess.run(
            _cli("synth", "voc", voc, "--train", images, "--val", 1, "--size", 160),
            check=True,
            capture_output=True,
            env=env,
            cwd=PROJECT_ROOT,
        )
        index = work / "index"
        subprocess.run(
            _cli("index", "build", voc / "JPEGImages", "--proposals", "kmeans", "--out", index, "--json"),
            check=True,
            capture_output=True,
            env=env,
            cwd=PROJECT_ROOT,
        )
    info = json.loads(
        subprocess.run(
            _cli("index", "info", index, "--json"),
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
        ).stdout
    )
    segments = int(info["segments"])
    queries = work / "queries.jsonl"
    queries.write_text("".join(json.dumps({"segment_id": i % segments}) + "\n" for i in range(100)))
    davis, year = _davis_mini(), "2016"
    if davis is None:
        davis, year = work / "davis", "2017"
        subprocess.run(
            _cli("synth", "davis", davis, "--sequences", 3, "--frames", 20),
            check=True,
            capture_output=True,
            env=env,
            cwd=PROJECT_ROOT,
        )
    results = work / "results"
    shutil.copytree(davis / "Annotations" / "480p", results)
    return index, queries, davis, year, results


def _time(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr}")
    return elapsed


def _announce(inputs: dict) -> None:
    """The input on stderr, and a warning when the DAVIS frames are not davis16-mini's size."""
    davis = inputs["davis_evaluate"]
    sizes = ", ".join(f"{count} at {size}" for size, count in davis["sizes"].items())
    print(
        f"input: index of {inputs['index']['segments']} segments; davis evaluate on {davis['root']}"
        f" ({len(davis['sequences'])} sequences, {davis['frames']} frames: {sizes})",
        file=sys.stderr,
    )
    warning = frame_size_warning(davis["sizes"])
    if warning:
        print(warning, file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, help="an existing index (default: build one)")
    parser.add_argument("--images", type=int, default=60, help="synthetic images of the built index (5 segments each)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="do not byte-compile the package first")
    parser.add_argument("--json", action="store_true")
    add_out_argument(parser, "bench_cli")
    args = parser.parse_args()
    record = BenchmarkRecord("bench_cli", args.out)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    if not args.no_compile:
        package = PROJECT_ROOT / "dense_retrieval"
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, env=env)
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        index, queries, davis, year, results = _setup(Path(tmp), args.index, args.images, env)
        segments = json.loads(
            subprocess.run(
                _cli("index", "info", index, "--json"), capture_output=True, text=True, env=env, cwd=PROJECT_ROOT
            ).stdout
        )["segments"]
        sequences = sorted(path.name for path in (davis / "Annotations" / "480p").iterdir() if path.is_dir())
        inputs = {
            "index": {"path": str(args.index) if args.index else "built: synthetic VOC", "segments": segments},
            "index_images": None if args.index else args.images,
            "queries_file": 100,
            "davis_evaluate": {"year": year, **davis_input(davis, sequences)},
        }
        _announce(inputs)
        commands = {
            'python -c "import faiss"': [sys.executable, "-c", "import faiss"],
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "query --segment-id 3 -k 5 --json": _cli("query", index, "--segment-id", 3, "-k", 5, "--json"),
            "query --queries (100 stored segments)": _cli("query", index, "--queries", queries, "-k", 5),
            "index info": _cli("index", "info", index),
            f"davis evaluate ({davis.name})": _cli(
                "davis", "evaluate", "--davis-root", davis, "--results", results, "--year", year, "--json"
            ),
            "checkpoints list": _cli("checkpoints", "list"),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, command in commands.items():
                times[name].append(_time(command, env))
    best = {name: min(values) for name, values in times.items()}
    faiss_s, torch_s = best['python -c "import faiss"'], best['python -c "import torch"']
    single, batch = best["query --segment-id 3 -k 5 --json"], best["query --queries (100 stored segments)"]
    summary = {
        "index_segments": segments,
        "davis_set": inputs["davis_evaluate"]["root"],
        "repeat": args.repeat,
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "byte_compiled": not args.no_compile,
        "load_average": os.getloadavg(),
        "commands": {
            name: {
                "best_s": round(best[name], 3),
                "median_s": round(statistics.median(times[name]), 3),
                "vs_import_faiss": round(best[name] / faiss_s, 2),
                "vs_import_torch": round(best[name] / torch_s, 2),
            }
            for name in commands
        },
        "stored_segment_query_under_1s": single < 1.0,
        "batch_of_100_vs_one_query": round(batch / single, 2),
    }
    record.write(inputs, summary)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"index of {segments} segments; best of {args.repeat} fresh processes; load {os.getloadavg()[0]:.2f}")
    print(f"{'command':<40} {'best s':>8} {'median s':>9} {'/ import faiss':>15} {'/ import torch':>15}")
    for name, row in summary["commands"].items():
        print(
            f"{name:<40} {row['best_s']:>8.3f} {row['median_s']:>9.3f} {row['vs_import_faiss']:>15.2f}"
            f" {row['vs_import_torch']:>15.2f}"
        )
    print(
        f"stored-segment query under 1.0 s: {single < 1.0} ({single:.3f} s); "
        f"100 queries in one process: {batch / single:.2f}x one query (target < 2x)"
    )


if __name__ == "__main__":
    main()
