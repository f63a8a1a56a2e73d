"""The commit points of the writing commands, as the kill-point harness (:mod:`.killpoint`) finds them.

Each point names a moment of a real run from outside the package: an audited file operation (PEP 578
events such as ``os.rename`` or ``open``, matched on their path) or a source line of a function. The
tests check the harness really reached the point (it writes ``hit_file``), so a point that no longer
exists after a code change fails loudly instead of passing without testing anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.reliability.harness import cli_command, start_child

KILLPOINT = Path(__file__).with_name("killpoint.py")

_COMMIT = [
    "dense_retrieval.retrieval.index.segment_index:SegmentIndex._commit",
    "dense_retrieval.index.segment_index:SegmentIndex._commit",
]

# `index add IDX EXTRA` (EXTRA: a folder "extra" of images named copy-*)
ADD_POINTS = {
    "reading-images": {"audit": "open", "match": "*/extra/copy-*", "occurrence": 2},
    "faiss-file-written": {"audit": "os.rename", "match": "*.tmp.faiss"},
    "faiss-file-renamed": {"function": _COMMIT, "line": 'execute("COMMIT")'},
    "committed": {"function": _COMMIT, "line": "self._prune()"},
}

# `index build IMAGES --out IDX --overwrite` over an existing index at IDX (a folder named "idx")
BUILD_POINTS = {
    "reading-images": {"audit": "open", "match": "*/JPEGImages/*", "occurrence": 3},
    # the staged build (retrieval/build.py) writes the new index's database last in its join stage
    "new-index-committing": {
        "function": ["dense_retrieval.retrieval.index.assemble:_join_stage"],
        "line": 'update_meta(db, {"recall"',
    },
    "swapping-in": {"function": ["dense_retrieval.data.outputs:swap_directory"], "line": "_RENAME_EXCHANGE"},
    "old-index-removing": {"audit": "shutil.rmtree", "match": "*idx*"},
}

# the loop over videos of every results folder (vos/results_run.py; before: vos/davis_run.py)
_PROPAGATE_LOOP = [
    "dense_retrieval.vos.results_run:_propagate_locked",
    "dense_retrieval.vos.davis_run:_propagate_locked",
]

# `davis propagate` of the synthetic set (sequences synth-00-..., synth-01-...) into a folder "res"
DAVIS_POINTS = {
    "first-sequence-masks": {"audit": "open", "match": "*/res/.synth-00-*.tmp/*", "occurrence": 3},
    "first-sequence-swapped": {"function": ["dense_retrieval.data.atomic:atomic_directory"], "line": "then()"},
    "between-sequences": {
        "function": _PROPAGATE_LOOP,
        "line": ": propagating",
        "occurrence": 2,
    },
    "second-sequence-masks": {"audit": "open", "match": "*/res/.synth-01-*.tmp/*", "occurrence": 3},
}


# `bench run` of mobilenet_v2 and resnet18 x the synthetic DAVIS and VOC sets (units: the 2 sequences of each DAVIS
# cell, each VOC cell whole; the DAVIS cells are scored and committed last)
BENCH_POINTS = {
    "davis-sequence-committing": {"audit": "os.rename", "match": "*/.committed/.*"},
    "second-cell-committing": {"audit": "os.rename", "match": "*/.cell.json.*", "occurrence": 2},
    "last-cell-committing": {"audit": "os.rename", "match": "*/.cell.json.*", "occurrence": 4},
}


def start_at_point(args: list[str], point: dict, signal: str, workdir: Path, cwd: Path | None = None):
    """Start ``dense-retrieval ARGS`` under the kill-point harness; returns (process, hit_file)."""
    spec = workdir / f"point-{signal}.json"
    hit = workdir / f"hit-{signal}"
    hit.unlink(missing_ok=True)
    spec.write_text(json.dumps({"point": point, "signal": signal, "hit_file": str(hit)}))
    command = cli_command([])[:1] + [str(KILLPOINT), str(spec), "--", *map(str, args)]
    return start_child(command, cwd=cwd), hit

# `jhmdb propagate` / `vip propagate` of the reliability sets (videos synth_run_01, synth_walk_00 / videos1,
# videos2) into a folder "res": the per-video commit (folder swapped in, record written) and just before it
_VIDEO_COMMIT = {"function": ["dense_retrieval.data.atomic:atomic_directory"], "line": "then()"}
JHMDB_POINTS = {
    "first-video-joints": {"audit": "open", "match": "*/res/.synth_run_01*.tmp/*"},
    "first-video-committing": _VIDEO_COMMIT,
    "between-videos": {"function": _PROPAGATE_LOOP, "line": ": propagating", "occurrence": 2},
}
VIP_POINTS = {
    "first-video-committing": _VIDEO_COMMIT,
}
