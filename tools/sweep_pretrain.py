"""Sweep pretraining settings on real frames and score each run on held-out DAVIS sequences.

    python tools/sweep_pretrain.py --train blackswan car-shadow --held-out libby motocross-jump \\
        --run "q32-nonn=--queue-size 32 --nn-weight 0" --run "auto=" --random-init 0 1 --jobs 2

Each ``--run NAME=FLAGS`` trains ``dense-retrieval pretrain`` (``--preset``, then FLAGS) on the frames
of the ``--train`` sequences of ``--davis-root`` plus the photos of ``--photos`` (scikit-image's bundled
ones by default), then scores its final checkpoint on the ``--held-out`` sequences, every frame, by the
CRW protocol (``davis propagate --checkpoint`` + ``davis evaluate``). ``--random-init SEED`` scores
the untrained network (``--backbone ARCH --weights random:SEED``) the same way.

Every job is a child process under ``nice`` with one torch thread (``OMP_NUM_THREADS=1``) and one data
worker; at most ``--jobs`` run at once. CPU time is user + sys of the child and the processes it waited
for (its data worker), from ``os.wait4``: the figure that does not depend on how loaded the machine is.

The work folder keeps every run (run folder, masks, scores, ``result.json``). Rerunning the command
reuses a finished run whose preset and flags are the same (said on stderr and marked ``"reused"`` in
the record, with the revision it ran at); a name already used with other flags is refused. The record
(``tools/benchrecord.py``) holds the inputs (sequences, frame counts and sizes, photo count), the runs
(settings as the run recorded them, CPU-minutes of training and of scoring, J&F, the epoch curve) and
the random-init scores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchrecord import BenchmarkRecord, add_out_argument, davis_input, git_tree, image_sizes  # noqa: E402

DAVIS_MINI = ROOT.parent / "shared" / "data" / "davis16-mini"
_PRINT = threading.Lock()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    held_root = _held_out_root(args.davis_root.resolve(), args.held_out, work / "held-out-root")
    train_paths = [args.davis_root.resolve() / "JPEGImages" / "480p" / name for name in args.train]
    train_paths.append(args.photos.resolve())
    record = BenchmarkRecord("sweep_pretrain", args.out)
    revision = git_tree(ROOT)
    if revision["revision"] is None and args.code_revision:  # an exported copy (git archive) of a revision
        revision = {"path": str(ROOT), "revision": args.code_revision, "exported": True}
    jobs = [("run", name, flags) for name, flags in args.run] + [("random", f"random-{s}", s) for s in args.random_init]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(_job, kind, name, spec, args, work, held_root, train_paths, revision)
            for kind, name, spec in jobs
        ]
        done = [future.result() for future in futures]
    runs = [entry for entry in done if entry["kind"] == "run"]
    randoms = [entry for entry in done if entry["kind"] == "random"]
    photos = _photo_sizes(args.photos)
    inputs = {
        "preset": args.preset,
        "train": {
            "davis": davis_input(args.davis_root, args.train),
            "photos": {"folder": str(args.photos.resolve()), **photos},
            "images": runs[0]["images"] if runs else None,
        },
        "held_out": davis_input(args.davis_root, args.held_out),
        "scoring": "CRW protocol (davis propagate --checkpoint, defaults) + davis evaluate, year 2016, every frame",
        "job_limits": {"jobs": args.jobs, "nice": args.nice, "torch_threads": 1, "data_workers": 1},
    }
    record.write(inputs=inputs, results={"runs": runs, "random_init": randoms})
    _print_table(runs, randoms)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis-root", type=Path, default=DAVIS_MINI, help="DAVIS root (default: davis16-mini)")
    parser.add_argument("--train", nargs="+", required=True, help="sequences whose frames are trained on")
    parser.add_argument("--held-out", nargs="+", required=True, help="sequences scored (never trained on)")
    parser.add_argument("--photos", type=Path, default=_skimage_photos(), help="a folder of photos trained on too")
    parser.add_argument("--preset", default="ours-cpu")
    parser.add_argument("--run", action="append", default=[], type=_run_spec, help="NAME=FLAGS (repeatable)")
    parser.add_argument("--random-init", nargs="*", type=int, default=[], help="seeds of untrained baselines")
    parser.add_argument("--arch", default="resnet18", help="architecture of the --random-init baselines")
    parser.add_argument("--work", type=Path, default=Path("sweep-work"), help="runs, masks, scores (reused)")
    parser.add_argument("--jobs", type=int, default=2, help="jobs at once (default 2)")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--no-score", action="store_true", help="train only (the record keeps the epoch curve)")
    parser.add_argument("--code-revision", help="the revision this copy of the code was exported from (git archive)")
    add_out_argument(parser, "sweep_pretrain")
    args = parser.parse_args(argv)
    overlap = set(args.train) & set(args.held_out)
    if overlap:
        parser.error(f"sequences both trained on and held out: {sorted(overlap)}")
    names = [name for name, _ in args.run]
    if len(set(names)) != len(names):
        parser.error("run names must be unique")
    return args


def _run_spec(text: str) -> tuple[str, list[str]]:
    name, sep, flags = text.partition("=")
    if not sep or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAME=FLAGS, got {text!r}")
    return name, shlex.split(flags)


def _skimage_photos() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    return Path(spec.submodule_search_locations[0]) / "data" if spec else Path("skimage-data")


def _held_out_root(davis_root: Path, sequences: list[str], root: Path) -> Path:
    """A DAVIS root of symlinks holding only ``sequences``, listed in ImageSets/2016/val.txt."""
    for kind in ("JPEGImages", "Annotations"):
        folder = root / kind / "480p"
        folder.mkdir(parents=True, exist_ok=True)
        for name in sequences:
            link = folder / name
            if not link.is_symlink():
                link.symlink_to(davis_root / kind / "480p" / name)
    listing = root / "ImageSets" / "2016"
    listing.mkdir(parents=True, exist_ok=True)
    (listing / "val.txt").write_text("".join(f"{name}\n" for name in sequences))
    return root


def _job(kind, name, spec, args, work: Path, held_root: Path, train_paths: list[Path], revision: dict) -> dict:
    folder = work / name
    result_file = folder / "result.json"
    request = {"kind": kind, "preset": args.preset, "flags": spec} if kind == "run" else {"kind": kind, "seed": spec}
    request["train"] = [str(p) for p in train_paths] if kind == "run" else None
    request["held_out"] = args.held_out
    request["scored"] = not (args.no_score and kind == "run")
    if result_file.is_file():
        previous = json.loads(result_file.read_text())
        previous["request"].setdefault("scored", True)  # records made before --no-score existed
        if previous["request"] != request:
            raise SystemExit(f"error: {name} in {work} was made with other settings; rename it or use another --work")
        _say(f"{name}: reused (made at {previous['revision'].get('revision')})")
        return {**previous, "reused": True}
    folder.mkdir(parents=True, exist_ok=True)
    entry: dict = {"kind": kind, "name": name, "request": request, "revision": revision}
    if kind == "run":
        command = [
            *_python(args),
            "pretrain",
            *map(str, train_paths),
            "--out",
            str(folder / "run"),
            "--preset",
            args.preset,
            "--workers",
            "1",
            "--json",
            "--overwrite",
            *spec,
        ]
        _say(f"{name}: training ({shlex.join(spec) or 'no flags'})")
        entry["train"] = _measured(command, folder / "train")
        summary = json.loads((folder / "train.out").read_text())
        entry.update(_run_facts(folder / "run", summary))
        weights = ["--checkpoint", summary["checkpoint"]]
    else:
        weights = ["--backbone", args.arch, "--weights", f"random:{spec}"]
    if args.no_score and kind == "run":
        entry["score"] = None
    else:
        _say(f"{name}: scoring on {', '.join(args.held_out)}")
        entry["score"] = _score(args, held_root, weights, folder)
        _say(f"{name}: J&F {entry['score']['J&F']:.3f}")
    result_file.write_text(json.dumps(entry, indent=1) + "\n")
    return entry


def _python(args) -> list[str]:
    return ["nice", "-n", str(args.nice), sys.executable, "-m", "dense_retrieval"]


def _measured(command: list[str], stem: Path) -> dict:
    """Run ``command`` (stdout -> STEM.out, stderr -> STEM.err); its CPU time from ``os.wait4``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = Path(f"{stem}.err").read_text(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"error: {shlex.join(command)} failed ({process.returncode}): {' | '.join(tail)}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"cpu_s": round(cpu, 1), "cpu_min": round(cpu / 60, 2), "wall_s": round(time.perf_counter() - start, 1)}


def _run_facts(run: Path, summary: dict) -> dict:
    """What the run recorded about itself: the resolved settings, the image count, the epoch curve."""
    record = json.loads((run / "config.json").read_text())
    config = record["config"]
    epochs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line]
    curve = [
        {key: e[key] for key in ("epoch_done", "loss", "info_nce", "nn_loss", "accuracy")}
        for e in epochs
        if e.get("event") == "epoch"
    ]
    settings = ("queue_size", "nn_topk", "nn_weight", "epochs", "batch_size", "arch", "seed")
    return {
        "images": record["images"],
        "settings": {key: config[key] for key in settings},
        "sizing": record.get("sizing"),
        "steps": summary["steps_done"],
        "epoch_curve": curve,
    }


def _score(args, held_root: Path, weights: list[str], folder: Path) -> dict:
    masks, scores = folder / "masks", folder / "scores"
    common = ["--davis-root", str(held_root), "--year", "2016", "--json"]
    propagate = _measured(
        [*_python(args), "davis", "propagate", *common, *weights, "--out", str(masks), "--overwrite"],
        folder / "propagate",
    )
    evaluate = [
        *_python(args),
        "davis",
        "evaluate",
        *common,
        "--results",
        str(masks),
        "--output",
        str(scores),
        "--processes",
        "1",
    ]
    evaluation = _measured(evaluate, folder / "evaluate")
    report = json.loads((folder / "evaluate.out").read_text())
    scores_global = report["global"]
    return {
        "J&F": round(scores_global["J&F-Mean"], 4),
        "J": round(scores_global["J-Mean"], 4),
        "F": round(scores_global["F-Mean"], 4),
        "per_sequence": {o["name"]: round(o["J&F-Mean"], 4) for o in report["per_object"]},
        "frames_scored": report["frames_scored"],
        "cpu_min": round(propagate["cpu_min"] + evaluation["cpu_min"], 2),
    }


def _photo_sizes(folder: Path) -> dict:
    """Sizes of the readable photos in ``folder`` (the trainer skips and counts the others)."""
    readable = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            image_sizes([path])
        except Exception:  # noqa: BLE001 - not an image PIL reads: the trainer skips it too
            continue
        readable.append(path)
    return image_sizes(readable)


def _print_table(runs: list[dict], randoms: list[dict]) -> None:
    print("| run | flags | K | top-k | NN weight | steps | train CPU-min | last InfoNCE / chance ", end="")
    print("| held-out J&F | per sequence |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for entry in randoms:
        score = entry["score"]
        per = " / ".join(f"{v:.3f}" for v in score["per_sequence"].values())
        print(f"| {entry['name']} | - | - | - | - | 0 | - | - | {score['J&F']:.3f} | {per} |")
    for entry in runs:
        s, score = entry["settings"], entry["score"] or {"J&F": float("nan"), "per_sequence": {}}
        per = " / ".join(f"{v:.3f}" for v in score["per_sequence"].values())
        flags = shlex.join(entry["request"]["flags"]) or "(none)"
        last = entry["epoch_curve"][-1] if entry["epoch_curve"] else {"info_nce": float("nan")}
        print(
            f"| {entry['name']} | `{flags}` | {s['queue_size']} | {s['nn_topk']} | {s['nn_weight']} | {entry['steps']} "
            f"| {entry['train']['cpu_min']:.1f} | {last['info_nce']:.2f} / {math.log(s['queue_size'] + 1):.2f} "
            f"| {score['J&F']:.3f} | {per} |"
        )


def _say(line: str) -> None:
    with _PRINT:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
