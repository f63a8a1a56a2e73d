"""`dense-retrieval pretrain` end to end: the run folder, the checkpoint in every command, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dense_retrieval.data.images import read_image
from dense_retrieval.data.synth import make_synthetic_davis
from tests.conftest import PROJECT_ROOT
from tests.pretrain_helpers import TINY_RECIPE, write_photos

STEP_KEYS = {
    "step",
    "epoch",
    "loss",
    "info_nce",
    "nn_loss",
    "accuracy",
    "lr",
    "images_per_s",
    "fallbacks",
    "unreadable",
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_photos(folder, 16)
    return folder


@pytest.fixture(scope="module")
def trained(photos, tmp_path_factory, run_cli_module) -> tuple[Path, dict, Path]:
    """A tiny 2-epoch run with a DAVIS evaluation at the end and a kept copy of every epoch."""
    root = tmp_path_factory.mktemp("pretrain")
    davis = root / "davis"
    make_synthetic_davis(davis, num_sequences=1, num_frames=4, size=(64, 96), seed=1)
    run = root / "run"
    r = run_cli_module(
        "pretrain", photos, "--out", run, *TINY_RECIPE, "--epochs", "2", "--workers", "0", "--keep-every", "1",
        "--eval-davis", davis, "--eval-every", "2", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r
    return run, r.json(), davis


@pytest.fixture(scope="module")
def run_cli_module():
    from typer.testing import CliRunner

    from dense_retrieval.cli import app
    from tests.conftest import CliResult

    return lambda *args: CliResult(CliRunner().invoke(app, [str(a) for a in args]))


@pytest.mark.slow
def test_a_run_writes_config_log_checkpoints_and_summary(trained):
    run, summary, _ = trained
    assert summary["epochs_done"] == 2 and summary["steps_done"] == 4 and summary["world_size"] == 1
    entries = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [e for e in entries if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4] and all(set(e) >= STEP_KEYS for e in steps)
    assert [e["epoch_done"] for e in entries if e["event"] == "epoch"] == [1, 2]
    (evaluation,) = [e for e in entries if e["event"] == "eval"]
    assert evaluation["epoch_done"] == 2 and 0 <= evaluation["J&F"] <= 1
    assert summary["evaluations"] == [evaluation]
    assert steps[0]["lr"] == pytest.approx(0.6 * 8 / 256) and steps[-1]["lr"] < steps[0]["lr"]  # cosine
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["crops"]["small_crops"] == 4 and record["bn_splits_per_process"] == 2
    assert json.loads((run / "summary.json").read_text()) == summary
    assert (run / "checkpoint_epoch0001.pth.tar").is_file() and (run / "checkpoint_epoch0002.pth.tar").is_file()
    payload = torch.load(run / "checkpoint.pth.tar", weights_only=True)
    assert payload["epoch"] == 2 and payload["arch"] == "resnet18"
    assert payload["pretrain"]["step"] == 4 and payload["pretrain"]["step_in_epoch"] == 0
    assert {"module.queue", "module.queue_ptr", "module.queue_backbone"} <= set(payload["state_dict"])
    chart = read_image(run / "training.png")  # loss, accuracy and the J&F panel: three panels side by side
    assert chart.shape[1] > 2.5 * chart.shape[0] and not list(run.glob(".training.png*"))


@pytest.mark.slow
def test_the_checkpoint_works_in_inspect_propagate_and_index_build(trained, photos, tmp_path, run_cli):
    run, _, davis = trained
    checkpoint = run / "checkpoint.pth.tar"
    r = run_cli("checkpoints", "inspect", checkpoint, "--json")
    assert r.exit_code == 0, r
    assert r.json()["format"] == "moco" and r.json()["architecture"] == "resnet18"
    r = run_cli(
        "davis", "propagate", "--davis-root", davis, "--out", tmp_path / "masks", "--checkpoint", checkpoint, "--json"
    )
    assert r.exit_code == 0, r
    assert r.json()["run"]["backbone"]["name"] == "resnet18"
    r = run_cli(
        "index", "build", photos, "--out", tmp_path / "index", "--proposals", "kmeans", "--checkpoint", checkpoint,
        "--resize", "short:64", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r


@pytest.mark.slow
def test_inspect_shows_the_pretrain_record_in_text_and_json(trained, run_cli):
    run, _, _ = trained
    checkpoint = run / "checkpoint_epoch0001.pth.tar"
    r = run_cli("checkpoints", "inspect", checkpoint, "--json")
    assert r.exit_code == 0, r
    record = r.json()["pretrain"]
    assert record["epoch"] == 1 and record["step"] == 2 and record["images"] == 16 and record["world_size"] == 1
    assert record["init"]["weights"].startswith("random") and record["versions"]["torch"] == torch.__version__
    assert record["config"]["arch"] == "resnet18" and "rng" not in record and "scaler" not in record
    text = run_cli("checkpoints", "inspect", checkpoint)
    assert text.exit_code == 0, text
    lines = text.stdout.splitlines()
    start = lines.index("written by dense-retrieval pretrain:")
    shown = {line[2:18].strip(): line[18:] for line in lines[start + 1 :]}  # "  <key:16><value>"
    assert shown["preset"] == "ours-cpu" and shown["epoch"] == "1 of 2 (step 2)" and shown["images"] == "16"
    assert shown["world size"] == "1" and "random" in shown["initial weights"]
    assert f"torch {torch.__version__}" in shown["versions"] and "arch resnet18" in shown["recipe"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dense_retrieval", "pretrain", *map(str, args)]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    """SIGKILL in the middle of epoch 2 (a checkpoint every step), --resume: the same weights and log."""
    write_photos(tmp_path / "photos", 32)  # 4 steps of 8 per epoch
    recipe = [tmp_path / "photos", *TINY_RECIPE, "--epochs", "2", "--workers", "1", "--json"]
    straight = tmp_path / "straight"
    subprocess.run(_cli(*recipe, "--out", straight), check=True, capture_output=True, env=_env(), cwd=PROJECT_ROOT)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _cli(*recipe, "--out", killed, "--checkpoint-every", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
        cwd=PROJECT_ROOT,
    )
    log = killed / "log.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        steps = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        if any(entry.get("step", 0) >= 5 for entry in steps):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = torch.load(killed / "checkpoint.pth.tar", weights_only=True)
    assert interrupted["epoch"] == 1 and 1 <= interrupted["pretrain"]["step_in_epoch"] <= 3  # mid-epoch
    assert interrupted["pretrain"]["step"] < 8

    resumed = subprocess.run(
        _cli(*recipe, "--out", killed, "--resume"), capture_output=True, text=True, env=_env(), cwd=PROJECT_ROOT
    )
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(straight / "checkpoint.pth.tar", weights_only=True)
    b = torch.load(killed / "checkpoint.pth.tar", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["pretrain"]["step"] == b["pretrain"]["step"] == 8
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for index, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][index]["momentum_buffer"])
    losses = [
        [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
        for run in (straight, killed)
    ]
    assert losses[0] == losses[1]  # the log describes one uninterrupted run


def _fake_run(run: Path) -> None:
    """A run folder as a killed run leaves it (a record of another recipe and a checkpoint)."""
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {"epochs": 3}, "preset": "ours-cpu"}))
    (run / "checkpoint.pth.tar").write_bytes(b"")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_existing_run_is_refused_and_a_changed_recipe_cannot_resume(photos, tmp_path, run_cli):
    run = tmp_path / "run"
    _fake_run(run)
    r = run_cli("pretrain", photos, "--out", run, *TINY_RECIPE)
    assert r.exit_code == 2 and "already holds a pretraining run" in r.stderr and "--resume" in r.stderr
    r = run_cli("pretrain", photos, "--out", run, *TINY_RECIPE, "--resume")
    assert r.exit_code == 2 and "cannot resume" in r.stderr and "config" in r.stderr


@pytest.mark.parametrize("flag", [None, "--overwrite", "--resume"])
def test_a_folder_that_is_not_a_run_is_never_written_into(photos, tmp_path, run_cli, flag):
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    (other / "config.json").write_text(json.dumps({"config": {}, "preset": "ours-cpu"}))  # a run's name is not enough
    before = _files(other)
    r = run_cli("pretrain", photos, "--out", other, *TINY_RECIPE, *([flag] if flag else []))
    assert r.exit_code == 2 and "not a pretraining run's (thesis.tex)" in r.stderr, r
    assert _files(other) == before


def test_an_output_that_is_or_touches_an_input_is_refused_before_any_work(photos, tmp_path, run_cli):
    before = _files(photos)
    for out, message in [
        (photos, "is an input"),
        (photos / "run", "inside an input folder"),
        (photos.parent, "contains an input"),
    ]:
        r = run_cli("pretrain", photos, "--out", out, *TINY_RECIPE, "--overwrite")
        assert r.exit_code == 2 and message in r.stderr, (out, r)
    assert _files(photos) == before and not (photos / "run").exists()
    weights = tmp_path / "run" / "init.pth"
    weights.parent.mkdir()
    torch.save({}, weights)
    r = run_cli("pretrain", photos, "--out", tmp_path / "run", *TINY_RECIPE, "--weights", weights, "--overwrite")
    assert r.exit_code == 2 and "contains an input" in r.stderr


def test_bad_initial_weights_leave_no_run_folder(photos, tmp_path, run_cli):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    r = run_cli("pretrain", photos, "--out", tmp_path / "run", *TINY_RECIPE, "--weights", garbage)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r
    assert not (tmp_path / "run").exists()


def test_a_run_folder_being_written_is_refused(photos, tmp_path, run_cli):
    from dense_retrieval.data.outputs import locked

    run = tmp_path / "run"
    _fake_run(run)
    before = _files(run)
    with locked(run):  # another process (flock is per open file: this holds it against the CLI below)
        r = run_cli("pretrain", photos, "--out", run, *TINY_RECIPE, "--overwrite")
    assert r.exit_code == 2 and "being written by another process" in r.stderr, r
    assert _files(run) == before


@pytest.mark.slow
def test_overwrite_replaces_only_the_previous_run(trained, photos, tmp_path, run_cli):
    import shutil

    old, _, _ = trained
    run = tmp_path / "run"
    shutil.copytree(old, run)
    assert (run / "checkpoint_epoch0001.pth.tar").is_file() and (run / "eval").is_dir()
    r = run_cli("pretrain", photos, "--out", run, *TINY_RECIPE, "--workers", "0", "--max-steps", "1", "--overwrite")
    assert r.exit_code == 0, r
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pth.tar", "config.json", "log.jsonl", "summary.json",
    ]  # fmt: skip  (no training.png: one step ends no epoch, so there is no curve to draw)
    assert len((run / "log.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--batch-size", "7"), "does not split into 1 process(es) x 2 batch-norm group(s)"),
        (("--batch-size", "64"), "fewer than one batch of 64"),
        (("--preset", "simclr"), "unknown pretraining preset"),
        (("--nn-topk", "99", "--queue-size", "32"), "exceeds the queue size"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(photos, tmp_path, run_cli, args, message):
    r = run_cli("pretrain", photos, "--out", tmp_path / "run", *TINY_RECIPE, *args)
    assert r.exit_code == 2, r
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoint.pth.tar").exists()


def test_empty_data_is_one_clear_error(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    r = run_cli("pretrain", tmp_path / "empty", "--out", tmp_path / "run", *TINY_RECIPE)
    assert r.exit_code == 2 and "no readable images or videos" in r.stderr


@pytest.mark.slow
@pytest.mark.weights
def test_continued_pretraining_starts_from_the_embedded_imagenet_mobilenet(photos, tmp_path, run_cli):
    from dense_retrieval.backbone.weights.checkpoints import load_checkpoint
    from dense_retrieval.backbone.weights.registry import resolve_weights_path

    run = tmp_path / "run"
    r = run_cli(
        "pretrain", photos, "--out", run, *TINY_RECIPE, "--arch", "mobilenet_v2", "--weights", "mobilenet_v2-imagenet",
        "--lr", "0.01", "--max-steps", "1", "--workers", "0", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r
    payload = torch.load(run / "checkpoint.pth.tar", weights_only=True)
    assert payload["pretrain"]["init"]["weights"] == "mobilenet_v2-imagenet"
    trained = load_checkpoint(run / "checkpoint.pth.tar", "mobilenet_v2").state_dict
    imagenet = load_checkpoint(resolve_weights_path("mobilenet_v2-imagenet"), "mobilenet_v2").state_dict
    weight = "features.0.0.weight"
    assert not torch.equal(trained[weight], imagenet[weight])  # one SGD step moved it ...
    torch.testing.assert_close(trained[weight], imagenet[weight], atol=0.05, rtol=0)  # ... a little


def test_a_queue_not_smaller_than_the_data_is_warned_about(photos, tmp_path, run_cli):
    """16 images and a 32-key queue: each query would meet earlier keys of its own image as negatives."""
    r = run_cli("pretrain", photos, "--out", tmp_path / "run", *TINY_RECIPE, "--max-steps", "1", "--workers", "0")
    assert r.exit_code == 0, r
    warning = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "queue (32 keys)" in warning[0] and "16 images" in warning[0], r.stderr
