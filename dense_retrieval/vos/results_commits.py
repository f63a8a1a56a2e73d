"""Videos committed by the ranks of a torchrun job, before the main rank folds them into ``propagation.json``.

    OUT/.committed/<video>.json    {"frames", "objects", "seconds"} of one finished video (a DAVIS sequence ...)

Under torchrun several processes write one results folder at once (:mod:`.results_run`). Each commits a
finished video (its folder swapped in) by writing its own small file here, so no two processes ever write
the same file; the main rank folds the files into ``propagation.json``, its only writer, once every rank is
done, and at the start of the next run when a job was killed before that. Read back, every file is checked
like an entry of ``propagation.json`` (:func:`~dense_retrieval.records.read_propagation_record`) before its
name becomes a path.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.atomic import write_json
from ..data.outputs import remove_owned
from ..errors import DataFormatError
from ..records import read_propagation_record

COMMITS = ".committed"


def commit_video(out: Path, name: str, entry: dict) -> None:
    """Record video ``name`` as finished (``entry``: frames, objects, seconds); atomic."""
    write_json(out / COMMITS / f"{name}.json", entry)


def read_commits(out: Path, run: dict) -> dict[str, dict]:
    """The videos committed in ``out`` by ranks and not folded yet: ``{name: entry}``.

    Args:
        run: the record's ``run`` object (the schema check needs a whole record).

    Raises:
        DataFormatError: a file that is not a commit of this toolkit, named.
    """
    folder = out / COMMITS
    if not folder.is_dir() or folder.is_symlink():
        return {}
    found: dict[str, dict] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue  # a temporary file of a rank killed while writing
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise DataFormatError(
                f"{path} is not a video commit (not JSON)", hint="remove it, or choose another --out"
            ) from None
        found[path.name.removesuffix(".json")] = entry
    checked = read_propagation_record({"run": run, "sequences": found}, str(folder))
    return checked["sequences"]


def fold_commits(out: Path, record: dict) -> int:
    """Move the commits of ``out`` into ``record["sequences"]`` (the caller writes the record, then calls
    :func:`clear_commits`). Returns how many were folded."""
    commits = read_commits(out, record["run"])
    record["sequences"].update(commits)
    return len(commits)


def clear_commits(out: Path) -> None:
    """Remove the commits folder (after the record holding them is written)."""
    folder = out / COMMITS
    if folder.exists() or folder.is_symlink():
        remove_owned(folder, out)
