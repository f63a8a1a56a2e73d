"""Starting the CLI under a real `torchrun --nproc-per-node 2` (gloo on CPU) in the multiprocess tests, and finding
one rank's process to freeze or kill it."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def torchrun_env() -> dict:
    # one compute thread everywhere: torch's results depend (by ~1e-7) on the intra-op thread count
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}


def in_process(*args: object, exit_codes: tuple[int, ...] = (0,)) -> dict:
    """The CLI in this process with one torch thread (as each torchrun rank has); its JSON report."""
    import torch
    from typer.testing import CliRunner

    from dense_retrieval.cli import app

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code in exit_codes, result.stderr
    return json.loads(result.stdout)


def torchrun(*args: str, ranks: int = 2) -> list[str]:
    """``python -m torch.distributed.run --nproc-per-node RANKS ... -m dense_retrieval ARGS`` on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(ranks),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        "-m",
        "dense_retrieval",
        *map(str, args),
    ]


def rank_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun worker ``rank`` under the torchrun process ``parent`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo = list(children.get(parent, []))
    while todo:
        pid = todo.pop()
        try:
            environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"LOCAL_RANK=" + str(rank).encode() in environ:
            return pid
        todo += children.get(pid, [])
    return None
