"""Shared fixtures: the CLI runner, the real-data location, the embedded weights."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n N` runs N workers, each a process: one compute thread each (torch, OpenCV, BLAS, and the
    # subprocesses and notebook kernels they start) keeps N workers on N cores instead of oversubscribing
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAVIS_MINI_ENV = "DENSE_RETRIEVAL_DAVIS_MINI"


def davis_mini_root() -> Path | None:
    """../shared/data/davis16-mini (or $DENSE_RETRIEVAL_DAVIS_MINI) when present, else None."""
    candidates = [os.environ.get(DAVIS_MINI_ENV), PROJECT_ROOT.parent / "shared" / "data" / "davis16-mini"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "JPEGImages").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def davis_mini() -> Path:
    """Real DAVIS-2016 frames and annotations (4 sequences); skips when absent."""
    root = davis_mini_root()
    if root is None:
        pytest.skip(f"davis16-mini not found (set {DAVIS_MINI_ENV})")
    return root


class CliResult:
    def __init__(self, result):
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception

    def json(self):
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"CliResult(exit_code={self.exit_code}, stdout={self.stdout[-2000:]!r}, stderr={self.stderr[-2000:]!r})"


@pytest.fixture()
def run_cli():
    """Run the CLI in-process: ``run_cli("davis", "evaluate", ...)`` -> CliResult (stdout, stderr, exit_code)."""
    from dense_retrieval.cli import app

    def _run(*args: str) -> CliResult:
        runner = CliRunner()
        return CliResult(runner.invoke(app, [str(a) for a in args]))

    return _run
