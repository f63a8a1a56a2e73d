"""Benchmark label propagation end to end: ``davis propagate`` of this tree against an older one, same run.

    python tools/bench_propagation.py                                   # all of davis16-mini, before = 0021210
    python tools/bench_propagation.py --e2e-repeat 2                    # the README's figures
    python tools/bench_propagation.py --sequences car-shadow --profile none --frames-per-sequence 2
    python tools/bench_propagation.py --e2e-sequences none --frames 2   # the kernels only (synthetic)

End to end: ``dense-retrieval davis propagate --year 2016`` with the defaults (embedded MobileNetV2
features.13, stride 8, CRW) on the DAVIS root (default: davis16-mini, all sequences), once with this
checkout and once with the package as it was at ``--before`` (default 0021210, the issue's baseline),
exported with ``git archive`` into a temporary folder and run from there. The two commands alternate
``--e2e-repeat`` times with ``--e2e-threads`` threads (default: the cores available); each run reports
frames/s as the command prints it (sequence time: decoding, features, propagation, writing; imports and
model building excluded), the wall time of the whole process, its CPU time and its peak resident set.
The masks of the two trees are compared pixel by pixel and scored (J&F of the sequences run).
``--frames-per-sequence N`` runs on a view of the first N frames of each sequence (a substitute: the
record and the output say so); without davis16-mini it falls back to a synthetic pair of 854x480 frames.

Profile (``--profile``, default ``blackswan:30``): one real frame with its full context, the stages one
after the other under ``torch.profiler`` at one thread, in both trees (tools/propagation_profile.py).

The record (``--out``, default benchmarks/bench_propagation.json) holds the input (root, sequences,
frame count and sizes, feature grid, backbone), the threads, both trees (``before``: the full revision
exported), the machine and versions, the load before and after, and every figure. Frames of another
size than 854x480 are said out loud. The kernels part (``--frames N``: the windowed top-k against the
dense reference on random features) is tools/propagation_kernels.py.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from benchrecord import BenchmarkRecord, add_out_argument, davis_input, frame_size_warning  # noqa: E402
from propagation_kernels import add_arguments, kernels, print_summary  # noqa: E402

BEFORE = "0021210"
"""The revision the end-to-end run compares against by default: the baseline of issue 17 (the package
before the speed work of issues 14 and 17). Exported with ``git archive``; nothing of it is kept."""

BACKBONE = "mobilenet_v2 features.13, output stride 8 (strides removed), embedded ImageNet weights, L2; CRW"


def _davis_root(given: str | None) -> Path | None:
    for candidate in (given, os.environ.get("DENSE_RETRIEVAL_DAVIS_MINI"), ROOT.parent / "shared/data/davis16-mini"):
        if candidate and (Path(candidate) / "JPEGImages").is_dir():
            return Path(candidate)
    if given:
        sys.exit(f"{given} is not a DAVIS root (no JPEGImages/)")
    return None


def _export(revision: str, dest: Path) -> tuple[Path, str]:
    """The package as it was at ``revision`` (``git archive``), unpacked into ``dest``; its full revision."""
    full = subprocess.run(["git", "-C", str(ROOT), "rev-parse", revision], capture_output=True, text=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision], capture_output=True)
    if full.returncode != 0 or archive.returncode != 0:
        sys.exit(f"cannot export {revision} with git archive: {archive.stderr.decode().strip()}")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest, full.stdout.strip()


def _env(tree: Path, threads: int) -> dict:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {**os.environ, "PYTHONPATH": str(tree), **{name: str(threads) for name in names}}


def _run(command: list[str], tree: Path, threads: int, work: Path) -> tuple[str, dict]:
    """Run ``command`` in ``tree``: its stdout, and the process's wall time, CPU time and peak RSS."""
    with tempfile.TemporaryFile("w+", dir=work) as stdout, tempfile.TemporaryFile("w+", dir=work) as stderr:
        began = time.perf_counter()
        process = subprocess.Popen(command, cwd=tree, env=_env(tree, threads), stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage
        wall = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if process.returncode != 0:
            sys.exit(f"{' '.join(command[2:5])} failed in {tree}:\n{stderr.read()}")
        cpu = usage.ru_utime + usage.ru_stime
        return stdout.read(), {"wall_s": round(wall, 2), "cpu_s": round(cpu, 1), "peak_rss_mb": usage.ru_maxrss // 1024}


def _propagate(tree: Path, root: Path, sequences: list[str], out: Path, threads: int, work: Path) -> dict:
    """``davis propagate`` of one tree as a user runs it: frames/s it prints, wall, CPU and peak RSS."""
    command = [sys.executable, "-m", "dense_retrieval", "davis", "propagate", "--davis-root", str(root)]
    command += ["--year", "2016", "--sequences", ",".join(sequences), "--out", str(out), "--json"]
    stdout, run = _run(command, tree, threads, work)
    report = json.loads(stdout)
    return {"frames_per_second": report["frames_per_second"], "frames": report["frames_propagated"], **run}


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
    return {"frames": frames, "pixels": pixels, "pixels_differing": differing, "frames_differing": frames_differing,
            "share_differing": differing / max(pixels, 1)}  # fmt: skip


def _jf(root: Path, sequences: list[str], results: Path, work: Path) -> float:
    """Mean J&F of ``results`` over exactly ``sequences`` (this tree's scorer)."""
    view = _view(root, sequences, None, work / f"jf-{results.name}")
    command = [sys.executable, "-m", "dense_retrieval", "davis", "evaluate", "--davis-root", str(view)]
    command += ["--results", str(results), "--year", "2016", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_env(ROOT, 1), check=True)
    return float(json.loads(done.stdout)["global"]["J&F-Mean"])


def _view(root: Path, sequences: list[str], frames: int | None, view: Path, size: str | None = None) -> Path:
    """A DAVIS-2016 root listing only ``sequences``, with their first ``frames`` frames (links), or all;
    with ``size`` ("WxH"), resized copies instead (frames bilinear, annotations nearest)."""
    from PIL import Image

    for kind in ("JPEGImages", "Annotations"):
        for name in sequences:
            folder = view / kind / "480p" / name
            folder.mkdir(parents=True)
            for path in sorted((root / kind / "480p" / name).iterdir())[:frames]:
                if size is None:
                    (folder / path.name).symlink_to(path.resolve())
                    continue
                resample = Image.Resampling.BILINEAR if kind == "JPEGImages" else Image.Resampling.NEAREST
                with Image.open(path) as image:
                    image.resize(tuple(map(int, size.split("x"))), resample).save(folder / path.name, quality=95)
    (view / "ImageSets" / "2016").mkdir(parents=True)
    (view / "ImageSets" / "2016" / "val.txt").write_text("".join(f"{name}\n" for name in sequences))
    return view


def _synthetic(work: Path) -> tuple[Path, list[str]]:
    """A synthetic DAVIS-2016 pair of 854x480 frames (when davis16-mini is absent)."""
    sys.path.insert(0, str(ROOT))
    from dense_retrieval.data.synth import make_synthetic_davis

    root = work / "synthetic"
    make_synthetic_davis(root, num_sequences=1, num_frames=2, size=(480, 854), year="2016")
    return root, (root / "ImageSets" / "2016" / "val.txt").read_text().split()


def _profile(tree: Path, root: Path, spec: str, work: Path) -> dict:
    """tools/propagation_profile.py of this checkout, run in ``tree`` at one thread."""
    sequence, frame = spec.split(":")
    command = [sys.executable, str(ROOT / "tools" / "propagation_profile.py"), "--davis-root", str(root)]
    stdout, run = _run([*command, "--sequence", sequence, "--frame", frame], tree, 1, work)
    return {**json.loads(stdout.strip().splitlines()[-1]), "process": run}


def _check_profile_trees(profiles: dict, trees: dict) -> None:
    """Each profile ran the code of its own tree: every package module it loaded lies inside the tree."""
    for name, found in profiles.items():
        outside = [module for module in found["modules"] if not module.startswith(str(trees[name].resolve()))]
        if outside:
            sys.exit(f"the {name} profile loaded modules from outside its tree {trees[name]}: {outside[:3]}")
        del found["modules"]


def _grids(sizes: dict, stride: int = 8) -> dict:
    """Feature grid (h x w) of each frame size ``"WxH"`` at ``stride``."""
    grids = {}
    for size in sizes:
        width, height = map(int, size.split("x"))
        grids[size] = f"{math.ceil(height / stride)}x{math.ceil(width / stride)}"
    return grids


def end_to_end(args: argparse.Namespace, work: Path) -> tuple[dict, dict, dict]:
    """Before and after, same machine, same run. Returns (inputs, results, revisions)."""
    root = _davis_root(args.davis_root)
    substitute = None
    if root is None:
        if not args.frames_per_sequence:
            sys.exit("davis16-mini not found: pass --davis-root, set DENSE_RETRIEVAL_DAVIS_MINI, or pass"
                     " --frames-per-sequence 2 to run on a synthetic pair of 854x480 frames")  # fmt: skip
        root, sequences = _synthetic(work)
        substitute = "synthetic pair of 854x480 frames (davis16-mini absent)"
    else:
        listed = (root / "ImageSets" / "2016" / "val.txt").read_text().split()
        sequences = listed if args.sequences == "all" else args.sequences.split(",")
        if args.frames_per_sequence or args.resize:
            source = root
            root = _view(root, sequences, args.frames_per_sequence, work / "view", args.resize)
            count = f"the first {args.frames_per_sequence}" if args.frames_per_sequence else "all"
            resized = f", resized to {args.resize}" if args.resize else ""
            substitute = f"{count} frames of each sequence of {source.resolve()}{resized}"
    inputs = {**davis_input(root, sequences), "substitute": substitute, "year": "2016"}
    inputs.update(grid=_grids(inputs["sizes"]), backbone=BACKBONE, threads=args.e2e_threads)
    _announce(inputs, args.before)
    before_tree, before_revision = _export(args.before, work / "before")
    trees = {"before": before_tree, "after": ROOT}
    revisions = {"before": {"path": f"git archive {args.before}", "revision": before_revision, "exported": True}}
    if args.after:  # another revision in place of this checkout (to reproduce an older figure)
        trees["after"], after_revision = _export(args.after, work / "after-tree")
        revisions["after"] = {"path": f"git archive {args.after}", "revision": after_revision, "exported": True}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for repeat in range(args.e2e_repeat):
        for name, tree in trees.items():
            out = work / f"{name}-{repeat}"
            runs[name].append(_propagate(tree, root, sequences, out, args.e2e_threads, work))
            print(f"  {name}: {json.dumps(runs[name][-1])}", file=sys.stderr)
    best = {name: max(found, key=lambda run: run["frames_per_second"]) for name, found in runs.items()}
    results = {
        "before": best["before"],
        "after": best["after"],
        "runs": runs,
        "speedup_frames_per_second": best["after"]["frames_per_second"] / best["before"]["frames_per_second"],
        "speedup_wall": best["before"]["wall_s"] / best["after"]["wall_s"],
        "masks": _compare_masks(work / "before-0", work / "after-0", sequences),
    }
    if args.jf:
        results["jf"] = {name: _jf(root, sequences, work / f"{name}-0", work) for name in trees}
    if args.profile != "none":
        results["profile"] = {name: _profile(tree, root, args.profile, work) for name, tree in trees.items()}
        _check_profile_trees(results["profile"], trees)
    return inputs, results, revisions


def _announce(inputs: dict, before: str) -> None:
    """The input on stderr, and a warning when the frames are not 854x480."""
    per_sequence = ", ".join(f"{name} {found['frames']}" for name, found in inputs["sequences"].items())
    sizes = ", ".join(f"{count} at {size} (grid {inputs['grid'][size]})" for size, count in inputs["sizes"].items())
    print(f"input: {inputs['root']}: {per_sequence}; {inputs['frames']} frames, {sizes}", file=sys.stderr)
    if inputs["substitute"]:
        print(f"input is a substitute: {inputs['substitute']}", file=sys.stderr)
    print(f"       {inputs['backbone']}; {inputs['threads']} thread(s); before = {before}", file=sys.stderr)
    warning = frame_size_warning(inputs["sizes"])
    if warning:
        print(warning, file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--e2e-sequences", "--sequences", dest="sequences", default="all",
                        help="sequences of the DAVIS root, 'all' or 'none' (no end-to-end part)")  # fmt: skip
    parser.add_argument("--frames-per-sequence", type=int, default=None,
                        help="run on the first N frames of each sequence (a substitute, said so)")  # fmt: skip
    parser.add_argument("--e2e-repeat", type=int, default=1, help="runs of each command, alternating; the best")
    parser.add_argument("--e2e-threads", type=int, default=None, help="threads of both commands (default: cores)")
    parser.add_argument("--profile", default="blackswan:30", help="SEQUENCE:FRAME to profile per operator, or none")
    parser.add_argument("--no-jf", dest="jf", action="store_false", help="skip scoring the masks")
    parser.add_argument("--before", default=BEFORE, help="the git revision to compare against (default %(default)s)")
    parser.add_argument("--after", help="a git revision to measure instead of this checkout (older figures)")
    parser.add_argument("--resize", metavar="WxH", help="run on copies of the frames resized to WxH (a substitute)")
    parser.add_argument("--davis-root", help="DAVIS root (default: $DENSE_RETRIEVAL_DAVIS_MINI or ../shared)")
    parser.add_argument("--json", action="store_true", help="print the record as one JSON document")
    add_out_argument(parser, "bench_propagation")
    args = parser.parse_args()
    args.e2e_threads = args.e2e_threads or len(os.sched_getaffinity(0))
    record = BenchmarkRecord("bench_propagation", args.out)
    inputs, results, revisions = {}, {}, {}
    if args.frames:
        print(f"input: random {args.channels}-d features on a {args.height}x{args.width} grid (synthetic, not frames),"
              f" 1 + {args.context} context frames, {args.frames} timed frame(s)", file=sys.stderr)  # fmt: skip
        results["kernels"] = kernels(args)
        inputs["kernels"] = results["kernels"]["input"]
    if args.sequences != "none":
        with tempfile.TemporaryDirectory(prefix="bench-propagation-") as tmp:
            e2e_inputs, results["end_to_end"], revisions = end_to_end(args, Path(tmp))
        inputs.update(e2e_inputs)
    document = record.write(inputs, results, revisions)
    if args.json:
        print(json.dumps(document, indent=2))
        return
    if "kernels" in results:
        print_summary(args, results["kernels"])
    if "end_to_end" in results:
        _print_end_to_end(inputs, results["end_to_end"], args, document)


def _print_end_to_end(inputs: dict, e2e: dict, args: argparse.Namespace, document: dict) -> None:
    before, after, masks = e2e["before"], e2e["after"], e2e["masks"]
    print(f"davis propagate ({inputs['backbone']}) on {inputs['root']}: {', '.join(inputs['sequences'])},"
          f" {inputs['frames']} frames {', '.join(inputs['sizes'])}; {args.e2e_threads} thread(s),"
          f" best of {args.e2e_repeat}")  # fmt: skip
    for name, row in (("before", before), ("after", after)):
        tree = document["trees"].get(name, document["trees"]["this"])
        revision = tree["revision"][:10] + (" + changes" if tree.get("dirty") else "") if tree["revision"] else "?"
        print(f"  {name:<7} ({revision})  {row['frames_per_second']:.3f} frames/s   whole process {row['wall_s']:.1f} s"
              f"   CPU {row['cpu_s']:.1f} s   peak RSS {row['peak_rss_mb']} MB")  # fmt: skip
    print(f"  speed-up {e2e['speedup_frames_per_second']:.2f}x frames/s, {e2e['speedup_wall']:.2f}x whole process")
    jf = e2e.get("jf")
    print(f"  masks: {masks['pixels_differing']} of {masks['pixels']} pixels differ ({masks['share_differing']:.1e}),"
          f" in {masks['frames_differing']} of {masks['frames']} frames"
          + (f"; J&F before {jf['before']:.4f}, after {jf['after']:.4f}" if jf else ""))  # fmt: skip
    for name, found in e2e.get("profile", {}).items():
        stages = ", ".join(f"{stage} {row['cpu_ms']:.0f}" for stage, row in found["stages"].items())
        print(f"  profile {name}: {found['sequence']} frame {found['frame']}, CPU ms at 1 thread: {stages}")
    load = document["load_average"]
    print(f"  load average before {load['before']}, after {load['after']}; record: {args.out}")


if __name__ == "__main__":
    main()
