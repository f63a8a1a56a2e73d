"""The curated public API: what the notebooks use comes from `dense_retrieval` itself, and costs nothing to import."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

import dense_retrieval
from tests.conftest import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
NAMESPACES = ("data", "viz", "protocols")


def _notebook_imports(path) -> list[tuple[str, list[str]]]:
    """(module, names) of every `from X import ...` / `import X` in the notebook's code cells."""
    found = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, ast.ImportFrom):
                found.append((node.module or "", [alias.name for alias in node.names]))
            elif isinstance(node, ast.Import):
                found += [(alias.name, []) for alias in node.names]
    return found


def _namespace_uses(path) -> set[tuple[str, str]]:
    """(namespace, attribute) of every `data.X` / `viz.X` / `protocols.X` in the notebook."""
    uses = set()
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in NAMESPACES:
                    uses.add((node.value.id, node.attr))
    return uses


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_import_only_the_public_api(path):
    package_imports = [(m, names) for m, names in _notebook_imports(path) if m.startswith("dense_retrieval")]
    assert package_imports, "the notebook should use the package"
    for module, names in package_imports:
        assert module == "dense_retrieval", f"{path.name} imports {module}; use `from dense_retrieval import ...`"
        for name in names:
            assert name in dir(dense_retrieval), f"{name} is not part of the public API"
            getattr(dense_retrieval, name)  # importable
    for namespace, attribute in _namespace_uses(path):
        assert hasattr(getattr(dense_retrieval, namespace), attribute), f"{namespace}.{attribute}"


def test_public_api_is_small_and_complete():
    names = dir(dense_retrieval)
    assert 15 <= len(names) <= 30, names
    for name in names:
        assert getattr(dense_retrieval, name) is not None
    with pytest.raises(AttributeError):
        dense_retrieval.no_such_name  # noqa: B018


def test_importing_the_package_imports_no_torch():
    code = "import sys, dense_retrieval, dense_retrieval.protocols; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert proc.stdout.strip() == "False", proc.stderr


def test_tools_import_only_the_package():
    for path in sorted((PROJECT_ROOT / "tools").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                assert not module.startswith("tests"), f"{path.name} imports {module}"


def test_no_module_is_much_over_400_lines():
    for path in (PROJECT_ROOT / "dense_retrieval").rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 420, f"{path.relative_to(PROJECT_ROOT)} has {lines} lines: split it"
