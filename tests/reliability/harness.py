"""What the reliability tests share: running the CLI (in this process or in a child), checking the
one-line error contract, and byte snapshots of folder trees.

The contract checked for every refused input (issue 10):

- exit code 2, nothing on stdout, exactly one line on stderr, starting ``error:``, no traceback and no
  Click usage block;
- the inputs byte-identical afterwards, nothing written or removed outside ``--out``.

Children run ``python -m dense_retrieval`` with this checkout first on ``PYTHONPATH``; they can be run
with a memory limit (``RLIMIT_AS``), and as root they can drop the capabilities that let root write
into read-only folders, so "read-only" means read-only for the test too.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REPORT_ENV = "DENSE_RETRIEVAL_RELIABILITY_REPORT"  # a JSONL file: one record per case (for the notes table)


# ------------------------------------------------------------------------------------------ running
@dataclass
class Outcome:
    """What a CLI run did: exit code, both streams, and (for children) the peak RSS in MiB."""

    exit_code: int
    stdout: str
    stderr: str
    max_rss_mib: float | None = None
    exception: BaseException | None = None

    def __repr__(self) -> str:
        return (
            f"Outcome(exit_code={self.exit_code}, stdout={self.stdout[-1500:]!r}, stderr={self.stderr[-1500:]!r}"
            + (f", max_rss_mib={self.max_rss_mib:.0f}" if self.max_rss_mib is not None else "")
            + ")"
        )


def run_inprocess(args: Sequence[str], cwd: Path | None = None, fence: Sequence[Path] = ()) -> Outcome:
    """Run the CLI in this process (Click's test runner: stdout and stderr captured apart).

    ``fence``: the folders the run may delete or rename in (:mod:`.fence`); default: the test's temp
    folders (``cwd`` and the pytest base temp folder).
    """
    from typer.testing import CliRunner

    from dense_retrieval.cli import app
    from tests.reliability.fence import fenced

    previous = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        with fenced(*(fence or default_fence(cwd))):
            result = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(previous)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return Outcome(result.exit_code, result.stdout, result.stderr, exception=exception)


FENCE_BASE_ENV = "DENSE_RETRIEVAL_TEST_FENCE_BASE"  # set by conftest: pytest's base temp folder


def default_fence(cwd: Path | None = None) -> list[Path]:
    """Where a test's commands may delete and rename: pytest's base temp folder and the working folder."""
    roots = [Path(os.environ[FENCE_BASE_ENV])] if os.environ.get(FENCE_BASE_ENV) else []
    return roots + ([Path(cwd)] if cwd is not None else [])


def child_env(extra: dict[str, str] | None = None, fence: Sequence[Path] = ()) -> dict[str, str]:
    from tests.reliability.fence import environment

    env = dict(os.environ)
    env.update(environment(*(fence or default_fence())))
    env["PYTHONPATH"] = str(PROJECT_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_XDIST_WORKER", None)
    env.update(extra or {})
    return env


FENCED_CLI = Path(__file__).with_name("fenced_cli.py")


def cli_command(args: Sequence[str]) -> list[str]:
    """``dense-retrieval ARGS`` in a child, behind the test fence when ``$DENSE_RETRIEVAL_TEST_FENCE`` is set."""
    return [sys.executable, str(FENCED_CLI), *[str(a) for a in args]]


def start_child(
    command: Sequence[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    memory_limit_mib: int | None = None,
    read_only_root: bool = False,
) -> subprocess.Popen:
    """Start ``command`` with pipes; optionally limit its address space or drop root's write-anywhere powers."""

    def prepare() -> None:
        if memory_limit_mib is not None:
            limit = memory_limit_mib * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if read_only_root:
            drop_root_write_capabilities()

    return subprocess.Popen(
        list(command),
        cwd=cwd,
        env=env or child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        preexec_fn=prepare,
    )


def finish_child(process: subprocess.Popen, timeout: float = 300) -> Outcome:
    """Wait for a child started by :func:`start_child`; its peak RSS comes from wait4."""
    deadline = time.monotonic() + timeout
    # read both pipes without blocking the child, then reap it with wait4 for its resource usage
    import selectors

    out: list[str] = []
    err: list[str] = []
    selector = selectors.DefaultSelector()
    for stream, sink in ((process.stdout, out), (process.stderr, err)):
        os.set_blocking(stream.fileno(), False)
        selector.register(stream, selectors.EVENT_READ, sink)
    open_streams = 2
    while open_streams:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            process.kill()
            raise TimeoutError(f"{process.args} ran past {timeout} s")
        for key, _ in selector.select(timeout=min(remaining, 1.0)):
            chunk = key.fileobj.read()
            if chunk:
                key.data.append(chunk)
            elif chunk == "":
                selector.unregister(key.fileobj)
                open_streams -= 1
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    code = process.returncode if process.returncode >= 0 else 128 - process.returncode
    return Outcome(code, "".join(out), "".join(err), max_rss_mib=usage.ru_maxrss / 1024)


def run_child(
    args: Sequence[str],
    cwd: Path | None = None,
    timeout: float = 300,
    memory_limit_mib: int | None = None,
    read_only_root: bool = False,
    env: dict[str, str] | None = None,
    fence: Sequence[Path] = (),
) -> Outcome:
    """Run ``dense-retrieval ARGS`` in a child process (exit code 128 + N for signal N), fenced to ``fence``
    (default: pytest's base temp folder and ``cwd``)."""
    env = env or child_env(fence=fence or default_fence(cwd))
    process = start_child(cli_command(args), cwd, env, memory_limit_mib, read_only_root)
    return finish_child(process, timeout)


_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER, _CAP_LINUX_IMMUTABLE = 1, 2, 3, 9
_PR_CAPBSET_DROP = 24


def drop_root_write_capabilities() -> None:
    """In a child about to exec: drop the capabilities that let root ignore file permissions.

    Root's permitted set after exec is its bounding set; without CAP_DAC_OVERRIDE and CAP_FOWNER a
    folder of mode 0555 is read-only for root too.
    """
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def can_drop_capabilities() -> bool:
    """Whether read-only folders can be made read-only for this test (non-root, or root with CAP_SETPCAP)."""
    if os.geteuid() != 0:
        return True
    try:
        result = subprocess.run(
            [sys.executable, "-c", "open('/proc/self/status').read()"],
            preexec_fn=drop_root_write_capabilities,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def make_read_only(root: Path) -> None:
    """chmod a tree read-only (folders 0555, files 0444)."""
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.is_symlink():
            path.chmod(0o555 if path.is_dir() else 0o444)
    root.chmod(0o555)


def make_writable(root: Path) -> None:
    root.chmod(0o755)
    for path in root.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


# ------------------------------------------------------------------------------------------ checks
def error_lines(outcome: Outcome) -> list[str]:
    return [line for line in outcome.stderr.splitlines() if line.strip()]


def assert_one_line_error(outcome: Outcome, *, exit_code: int = 2, contains: Iterable[str] = ()) -> str:
    """Exit ``exit_code``, empty stdout, one stderr line starting 'error:', no traceback or usage block."""
    lines = error_lines(outcome)
    problems = []
    if outcome.exit_code != exit_code:
        problems.append(f"exit code {outcome.exit_code}, expected {exit_code}")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines, expected 1")
    if lines and not lines[-1].startswith("error: "):
        problems.append("the stderr line does not start with 'error: '")
    if "Traceback" in outcome.stderr or "Usage:" in outcome.stderr:
        problems.append("traceback or usage block on stderr")
    if "error: unexpected " in outcome.stderr:
        problems.append("reported as an unexpected error")
    if outcome.stdout.strip():
        problems.append("output on stdout")
    for text in contains:
        if text.lower() not in outcome.stderr.lower():
            problems.append(f"message does not mention {text!r}")
    assert not problems, "; ".join(problems) + f"\n{outcome!r}"
    return lines[0]


# ------------------------------------------------------------------------------------------ snapshots
Snapshot = dict[str, tuple]

# SQLite's shared-memory index is rewritten by every connection; it holds no data.
_VOLATILE_SUFFIXES = ("-shm",)


def snapshot(root: Path, exclude: Iterable[Path] = ()) -> Snapshot:
    """Every entry under ``root`` (itself included): kind, mode bits and content hash or link target.

    Paths under any of ``exclude`` are left out. An empty SQLite WAL file and a missing one count as equal.
    """
    root = Path(root)
    excluded = [Path(os.path.abspath(p)) for p in exclude]
    entries: Snapshot = {}

    def visit(path: Path) -> None:
        absolute = Path(os.path.abspath(path))
        if any(absolute == e or e in absolute.parents for e in excluded):
            return
        key = os.path.relpath(path, root)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            entries[key] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            entries[key] = ("dir", stat.S_IMODE(info.st_mode))
            for child in sorted(os.listdir(path)):
                visit(path / child)
        elif stat.S_ISREG(info.st_mode):
            if path.name.endswith(_VOLATILE_SUFFIXES):
                return
            if path.name.endswith("-wal") and info.st_size == 0:
                return
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            entries[key] = ("file", stat.S_IMODE(info.st_mode), digest)
        else:
            entries[key] = ("other", stat.S_IFMT(info.st_mode))

    if root.exists() or root.is_symlink():
        visit(root)
    return entries


def snapshot_diff(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable differences: created, removed and changed entries."""
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            changes.append(f"removed {key}")
        elif key not in before:
            changes.append(f"created {key}")
        elif before[key] != after[key]:
            changes.append(f"changed {key}")
    return changes


# ------------------------------------------------------------------------------------------ report
def record(case_id: str, outcome: Outcome | None, problem: str | None) -> None:
    """Append the case's outcome to $DENSE_RETRIEVAL_RELIABILITY_REPORT (for the notes table)."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    entry = {
        "case": case_id,
        "exit_code": None if outcome is None else outcome.exit_code,
        "stderr": None if outcome is None else outcome.stderr[-600:],
        "problem": problem,
    }
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def send_signal_when(predicate: Callable[[], bool], process: subprocess.Popen, sig: int, timeout: float = 120) -> bool:
    """Poll ``predicate`` every 5 ms; when true send ``sig`` to ``process``. False if it exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if predicate():
            process.send_signal(sig)
            return True
        time.sleep(0.005)
    raise TimeoutError("condition never became true")


__all__ = [
    "PROJECT_ROOT",
    "Outcome",
    "assert_one_line_error",
    "can_drop_capabilities",
    "child_env",
    "cli_command",
    "drop_root_write_capabilities",
    "error_lines",
    "finish_child",
    "make_read_only",
    "make_writable",
    "record",
    "run_child",
    "run_inprocess",
    "send_signal_when",
    "signal",
    "snapshot",
    "snapshot_diff",
    "start_child",
]
