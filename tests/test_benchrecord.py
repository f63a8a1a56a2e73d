"""tools/benchrecord.py: the revision and changed files a benchmark record names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from benchrecord import git_tree  # noqa: E402


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


def test_a_tree_names_its_revision_and_every_changed_file_whole(tmp_path):
    _git(tmp_path, "init", "-q")
    for name in ("a.py", "b.json"):
        (tmp_path / name).write_text("1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    clean = git_tree(tmp_path)
    assert len(clean["revision"]) == 40 and clean["dirty"] is False and clean["changed"] == []
    (tmp_path / "b.json").write_text("2\n")  # first line of `git status --porcelain`: " M b.json"
    (tmp_path / "a.py").write_text("2\n")
    dirty = git_tree(tmp_path)
    assert dirty["dirty"] is True and sorted(dirty["changed"]) == ["a.py", "b.json"]


def test_a_folder_outside_git_has_no_revision(tmp_path):
    assert git_tree(tmp_path) == {"path": str(tmp_path), "revision": None, "dirty": None}
