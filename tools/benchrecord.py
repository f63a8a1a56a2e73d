"""What a benchmark ran on, written beside its figures so that a figure cannot lie about its input.

Every benchmark under tools/ ends with one JSON file (``--out``, default ``benchmarks/<name>.json``) made
by :class:`BenchmarkRecord`: the command line, the git revision of every tree it measured, the machine
(CPU model, cores, memory), the software (python, torch, numpy, faiss), the threads, the load average
before and after, and the inputs (sequences, frame counts and sizes, feature grids, backbones) that the
benchmark itself describes. The README quotes a figure only with the file that holds it.

    record = BenchmarkRecord("bench_propagation", args.out)
    ...                                   # the benchmark
    record.write(inputs={...}, results={...})

Frames of another size than a figure claims are said out loud (:func:`frame_size_warning`), never
measured silently.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = ROOT / "benchmarks"
DAVIS_FRAME_SIZE = (854, 480)  # width x height of DAVIS 480p frames (davis16-mini)


def add_out_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out FILE``: where the record goes (default ``benchmarks/<name>.json`` in the checkout)."""
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_FOLDER / f"{name}.json",
        help=f"the JSON record of this run: inputs, machine, revisions, results (default: benchmarks/{name}.json)",
    )


def git_tree(path: Path | str = ROOT) -> dict:
    """The revision of the git tree at ``path``, whether it has uncommitted changes to tracked files, and
    which (at most 20 paths: a record rewritten by the run itself shows here, not as unknown changes)."""

    def _git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
        return done.stdout.rstrip() if done.returncode == 0 else ""  # rstrip: porcelain lines start with a space

    revision = _git("rev-parse", "HEAD")
    if not revision:
        return {"path": str(path), "revision": None, "dirty": None}
    changed = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"path": str(path), "revision": revision, "dirty": bool(changed), "changed": changed[:20]}


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(module: str) -> str | None:
    """The version of an installed module, without importing it when it is not loaded yet."""
    from importlib import metadata

    names = {"faiss": "faiss-cpu", "cv2": "opencv-python-headless"}
    if module in sys.modules and hasattr(sys.modules[module], "__version__"):
        return str(sys.modules[module].__version__)
    for name in (names.get(module, module), module):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def machine() -> dict:
    """The machine and software a benchmark ran on."""
    record = {
        "cpu_model": cpu_model(),
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in ("torch", "torchvision", "numpy", "faiss", "timm")},
        "env_threads": {key: os.environ[key] for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if key in os.environ},
    }
    if "torch" in sys.modules:
        record["torch_threads"] = sys.modules["torch"].get_num_threads()
    return record


def image_sizes(paths: Iterable[Path | str]) -> dict:
    """How many images and of which sizes (``"854x480": count``), read from the headers only."""
    from PIL import Image

    sizes: Counter[str] = Counter()
    for path in paths:
        with Image.open(path) as image:
            sizes[f"{image.width}x{image.height}"] += 1
    return {"count": sum(sizes.values()), "sizes": dict(sizes)}


def davis_input(root: Path | str, sequences: Iterable[str], resolution: str = "480p") -> dict:
    """The DAVIS frames a benchmark reads: per sequence, the frame count and frame sizes.

    Returns:
        ``{"root", "sequences": {name: {"frames", "sizes"}}, "frames", "sizes"}`` with sizes as
        ``"WxH": count``.
    """
    root = Path(root)
    per_sequence, total = {}, Counter()
    for name in sequences:
        frames = sorted((root / "JPEGImages" / resolution / name).glob("*.jpg"))
        found = image_sizes(frames)
        per_sequence[name] = {"frames": found["count"], "sizes": found["sizes"]}
        total.update(found["sizes"])
    return {"root": str(root.resolve()), "sequences": per_sequence, "frames": sum(total.values()), "sizes": dict(total)}


def frame_size_warning(sizes: dict, expected: tuple[int, int] = DAVIS_FRAME_SIZE, what: str = "davis16-mini") -> str:
    """A warning line when the frames are not all of the size a figure claims, else ``""``.

    Args:
        sizes: ``{"WxH": count}`` as :func:`image_sizes` gives them.
        expected: (width, height) the figure is quoted for.
    """
    wanted = f"{expected[0]}x{expected[1]}"
    other = {size: count for size, count in sizes.items() if size != wanted}
    if not other:
        return ""
    found = ", ".join(f"{count} at {size}" for size, count in sorted(other.items()))
    return (
        f"warning: {found} frame(s) are not {wanted} ({what}'s size): these figures are not comparable"
        f" with figures quoted for {wanted} frames"
    )


class BenchmarkRecord:
    """The JSON record of one benchmark run; created before the work, written after it.

    Args:
        name: the benchmark's name (``bench_propagation``).
        out: the file to write (its folder is created); ``None`` writes nothing.
        trees: other git trees the benchmark measured, by role (``{"before": path}``); this checkout is
            always recorded as ``"this"``.
    """

    def __init__(self, name: str, out: Path | str | None, trees: dict[str, Path | str] | None = None) -> None:
        self.name = name
        self.out = Path(out) if out is not None else None
        self.trees = {"this": ROOT, **(trees or {})}
        self.argv = [sys.executable, *sys.argv]
        self.started = time.time()
        self.load_before = [round(value, 2) for value in os.getloadavg()]

    def document(self, inputs: dict, results: dict, revisions: dict[str, dict] | None = None) -> dict:
        """The record as a dict: ``inputs`` and ``results`` are the benchmark's own."""
        trees = {role: git_tree(path) for role, path in self.trees.items()}
        trees.update(revisions or {})
        return {
            "benchmark": self.name,
            "command": self.argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "wall_s": round(time.time() - self.started, 3),
            "trees": trees,
            "machine": machine(),
            "load_average": {"before": self.load_before, "after": [round(v, 2) for v in os.getloadavg()]},
            "inputs": inputs,
            "results": results,
        }

    def write(self, inputs: dict, results: dict, revisions: dict[str, dict] | None = None) -> dict:
        """Write the record atomically to ``out`` (if any), say where on stderr, and return it.

        Args:
            revisions: trees recorded by revision rather than path (a ``git archive`` export of an
                older commit: ``{"before": {"revision": "0021210", "exported": True}}``).
        """
        document = self.document(inputs, results, revisions)
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            partial = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
            partial.write_text(json.dumps(document, indent=2, default=str) + "\n")
            os.replace(partial, self.out)
            print(f"record: {self.out}", file=sys.stderr)
        return document
