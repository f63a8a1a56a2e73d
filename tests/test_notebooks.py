"""Every notebook under notebooks/ runs top to bottom (nbclient), with its outputs going to a temp folder.

Each notebook's first code cell is its parameters cell (tagged "parameters"); the test appends overrides
to it: OUT (a temporary folder) and, when present, the real-data root.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import PROJECT_ROOT, davis_mini_root

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))


def _parameters_cell(notebook) -> nbformat.NotebookNode:
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    raise AssertionError("the notebook has no code cell tagged 'parameters'")


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))  # the kernel imports this checkout's package
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    cell = _parameters_cell(notebook)
    mini = davis_mini_root()
    cell.source += f"\n\n# injected by tests/test_notebooks.py\nOUT = {str(tmp_path / 'out')!r}\n"
    if mini is not None:
        cell.source += f"DAVIS_ROOT = {str(mini)!r}\n"
    client = NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the failing cell


def test_committed_notebooks_carry_no_bulky_outputs():
    for path in NOTEBOOKS:
        assert path.stat().st_size < 200_000, f"{path.name} is {path.stat().st_size} bytes: clear its outputs"
