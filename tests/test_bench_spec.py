"""The `bench run` spec and the benchmark registrations: TOML read and checked key by key (torch-free), the rows
of a pretraining run folder, the runner contract every registration keeps."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dense_retrieval.bench.benchmarks import BENCHMARKS
from dense_retrieval.bench.registry import Benchmark, Setting
from dense_retrieval.bench.spec import read_spec
from dense_retrieval.errors import InputError
from tests.conftest import PROJECT_ROOT

VOC = '[benchmark.voc]\nroot = "voc"\n'
KEPT = "checkpoint_epoch{:04d}.pth.tar"


@pytest.fixture()
def roots(tmp_path) -> Path:
    for name in ("davis", "voc"):
        (tmp_path / name).mkdir()
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "bench.toml"
    path.write_text(text)
    return path


def test_a_spec_is_read_with_defaults_and_paths_relative_to_it(roots):
    spec = read_spec(
        write(
            roots,
            '[run]\ndevice = "cpu"\n[[backbone]]\nweights = "default"\n[[backbone]]\narch = "resnet18"\n'
            'weights = "random:3"\n[[backbone]]\nweights = "ours-coco-800ep"\n'
            '[benchmark.davis16]\nkind = "davis"\nroot = "davis"\nyear = "2016"\ntemperature = 0.07\n'
            '[benchmark.voc]\nroot = "voc"\n',
        )
    )
    assert [(b.label, b.arch, b.weights) for b in spec.backbones] == [
        ("mobilenet_v2", "mobilenet_v2", "default"),
        ("resnet18-random3", "resnet18", "random:3"),
        ("ours-coco-800ep", "resnet50", "ours-coco-800ep"),
    ]
    davis, voc = spec.benchmarks
    assert (davis.name, davis.benchmark.name, voc.name) == ("davis16", "davis", "voc")
    assert davis.settings["root"] == str(roots / "davis") and davis.settings["year"] == "2016"
    assert davis.settings["temperature"] == 0.07 and davis.settings["preset"] is None
    assert voc.settings["size"] == 512 and voc.settings["proposals"] == "gt"
    assert spec.device == "cpu" and spec.batch_size == 4
    assert spec.inputs() == [roots / "bench.toml", roots / "davis", roots / "voc"]
    assert json.loads(json.dumps(spec.as_dict()))["benchmarks"]["davis16"]["kind"] == "davis"


@pytest.mark.parametrize(
    "text, words",
    [
        ('[[backbone]]\nweights = "default"\n', ("no [benchmark.NAME]",)),
        ('[benchmark.voc]\nroot = "voc"\n', ("no [[backbone]]",)),
        ('[[backbone]]\nweight = "default"\n[benchmark.voc]\nroot = "voc"\n', ("backbone 1", "'weight'")),
        ('[[backbone]]\n[benchmark.voc]\nroot = "voc"\nsize = "big"\n', ("[benchmark.voc]", "size", "integer")),
        ("[[backbone]]\n[benchmark.voc]\nsize = 64\n", ("'root' is required", 'root = "path/to/folder"')),
        ('[[backbone]]\n[benchmark.voc]\nroot = "nowhere"\n', ("no such folder",)),
        ('[[backbone]]\n[benchmark.d]\nkind = "davis"\nroot = "davis"\nyear = "2019"\n', ("2019", "2017, 2016")),
        ('[[backbone]]\n[benchmark.x]\nkind = "kinetics"\nroot = "voc"\n', ("kinetics", "davis, voc")),
        ('[[backbone]]\nlabel = "a/b"\n[benchmark.voc]\nroot = "voc"\n', ("'a/b' is not a plain name",)),
        ('[[backbone]]\n[[backbone]]\n[benchmark.voc]\nroot = "voc"\n', ("'mobilenet_v2' appears twice",)),
        (
            '[[backbone]]\narch = "resnet18"\nweights = "ours-coco-800ep"\n[benchmark.voc]\nroot = "voc"\n',
            ("resnet50",),
        ),
        ('[[backbone]]\nweights = "random:x"\n[benchmark.voc]\nroot = "voc"\n', ("random:x",)),
        ('[[backbone]]\npretrain_run = "voc"\n[benchmark.voc]\nroot = "voc"\n', ("not a pretraining run folder",)),
        ('[[backbone]]\n[benchmark.voc]\nroot = "voc"\n[extra]\n', ("unknown table 'extra'",)),
        ("[[backbone]\n", ("not valid TOML", "line 1")),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_key_and_the_fix(roots, text, words):
    with pytest.raises(InputError) as caught:
        read_spec(write(roots, text))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"spec {roots / 'bench.toml'}")
    for word in words:
        assert word in message, message


def fake_run(folder: Path, epochs: list[int], summary_epochs: int | None) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"config": {"arch": "resnet18"}, "preset": "ours-cpu"}))
    (folder / "checkpoint.pth.tar").write_bytes(b"latest")
    for epoch in epochs:
        (folder / f"checkpoint_epoch{epoch:04d}.pth.tar").write_bytes(b"kept")
    if summary_epochs is not None:
        (folder / "summary.json").write_text(json.dumps({"epochs_done": summary_epochs}))
    return folder


@pytest.mark.parametrize(
    "kept, ended, rows",
    [
        (
            [2, 4],
            5,
            [(2, "checkpoint_epoch0002.pth.tar"), (4, "checkpoint_epoch0004.pth.tar"), (5, "checkpoint.pth.tar")],
        ),
        ([2, 4], 4, [(2, "checkpoint_epoch0002.pth.tar"), (4, "checkpoint_epoch0004.pth.tar")]),
        ([2], None, [(2, "checkpoint_epoch0002.pth.tar")]),  # still running: the latest is not a kept epoch
        ([], 3, [(3, "checkpoint.pth.tar")]),  # --keep-every 0: the final checkpoint
    ],
)
def test_a_pretraining_run_is_one_row_per_kept_checkpoint(roots, kept, ended, rows):
    fake_run(roots / "run", kept, ended)
    spec = read_spec(
        write(roots, '[[backbone]]\nlabel = "mine"\npretrain_run = "run"\n[benchmark.voc]\nroot = "voc"\n')
    )
    assert [(b.label, b.arch, b.run, b.epoch, Path(b.weights).name) for b in spec.backbones] == [
        (f"mine@ep{epoch}", "resnet18", "mine", epoch, name) for epoch, name in rows
    ]
    assert roots / "run" in spec.inputs() and all(Path(b.weights).is_absolute() for b in spec.backbones)


def test_every_registration_keeps_the_runner_contract():
    for name, benchmark in BENCHMARKS.items():
        assert isinstance(benchmark, Benchmark) and benchmark.name == name and benchmark.headline
        assert any(s.is_path and s.required for s in benchmark.settings), "a data root to check against --out"
        runner = importlib.import_module(benchmark.runner)
        assert callable(runner.record)
        split = [hasattr(runner, f) for f in ("prepare", "run_part", "finish")]
        assert (all(split) and not hasattr(runner, "run")) or (not any(split) and callable(runner.run)), name
        for setting in benchmark.settings:
            if setting.default is not None and not setting.is_path:
                assert setting.check(setting.default, "x", Path(".")) == setting.default


def test_settings_check_values_by_kind(tmp_path):
    assert Setting("n", "number", minimum=0).check(3, "w", tmp_path) == 3
    for setting, value in [
        (Setting("n", "number"), float("inf")),
        (Setting("n", "integer"), 2.5),
        (Setting("n", "integer"), True),
        (Setting("n", "integer", minimum=1), 0),
        (Setting("f", "flag"), "yes"),
        (Setting("t", "text", choices=("a",)), "b"),
        (Setting("p", "file"), "missing.txt"),
    ]:
        with pytest.raises(InputError):
            setting.check(value, "w", tmp_path)


def test_the_spec_registrations_and_report_import_no_torch():
    code = (
        "import sys; import dense_retrieval.bench.spec, dense_retrieval.bench.benchmarks, "
        "dense_retrieval.bench.report; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
