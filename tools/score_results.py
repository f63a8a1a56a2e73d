"""J&F of several DAVIS results folders side by side, each with the run record that made it: one JSON record.

For the effect of a change on the numbers (a preprocessing recipe, a propagation setting): make the
folders with ``davis propagate`` (before and after the change, e.g. from a ``git archive`` of each
revision), then score them here. Each folder is scored by ``dense-retrieval davis evaluate`` into a
temporary folder (the results stay untouched), and the record keeps its ``propagation.json`` run record,
so the figure says which backbone, protocol and preprocessing made it.

    python tools/score_results.py --davis-root ../shared/data/davis16-mini --year 2016 \\
        --results before=/tmp/dino-before --results after=/tmp/dino-after \\
        --revision before=1fc4565 --revision after=0f1cb47 --out benchmarks/preprocessing_dino_jf.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchrecord import BenchmarkRecord, add_out_argument, davis_input, frame_size_warning  # tools/ is on sys.path


def _score(davis_root: Path, year: str, results: Path) -> dict:
    """``davis evaluate --json`` of ``results``, with its CSVs written to a temporary folder."""
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "dense_retrieval", "davis", "evaluate", "--davis-root", str(davis_root)]
        command += ["--results", str(results), "--year", year, "--output", scratch, "--processes", "1", "--json"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"davis evaluate failed on {results}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis-root", type=Path, required=True)
    parser.add_argument("--year", default="2017")
    parser.add_argument("--results", action="append", required=True, help="NAME=FOLDER, repeated")
    parser.add_argument(
        "--revision", action="append", default=[], help="NAME=COMMIT: the revision that made folder NAME (repeated)"
    )
    add_out_argument(parser, "score_results")
    args = parser.parse_args()
    record = BenchmarkRecord("score_results", args.out)
    folders = dict(map(_pair, args.results))
    scored, runs = {}, {}
    for name, folder in folders.items():
        runs[name] = json.loads((Path(folder) / "propagation.json").read_text())["run"]
        report = _score(args.davis_root, args.year, Path(folder))
        scored[name] = {key: report[key] for key in ("global", "per_object", "frames_scored")}
        print(f"{name}: J&F {report['global']['J&F-Mean']:.4f} ({folder})", file=sys.stderr)
    sequences = sorted({entry["name"].rsplit("_", 1)[0] for s in scored.values() for entry in s["per_object"]})
    frames = davis_input(args.davis_root, sequences)
    warning = frame_size_warning(frames["sizes"])
    if warning:
        print(warning, file=sys.stderr)
    revisions = {name: {"revision": commit, "exported": True} for name, commit in map(_pair, args.revision)}
    inputs = {"davis": frames, "year": args.year, "results": folders, "runs": runs}
    record.write(inputs=inputs, results=scored, revisions=revisions)


def _pair(item: str) -> tuple[str, str]:
    name, _, value = item.partition("=")
    return name, value


if __name__ == "__main__":
    main()
