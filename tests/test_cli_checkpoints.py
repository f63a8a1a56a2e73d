"""`dense-retrieval checkpoints list | inspect | download` through the CLI, good and bad input."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from dense_retrieval.backbone.weights import registry as weights_registry
from tests.checkpoint_files import (
    malicious_checkpoint,
    moco_checkpoint,
    resnet18_state,
    serving,
)

PAYLOAD = b"not really weights, but bytes with a known digest " * 40000
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with serving(PAYLOAD) as state:
        yield state


@pytest.fixture()
def test_entry(server, monkeypatch):
    """A registry entry served by the local server (the real ones point at the internet)."""

    def add(**hashes):
        entry = dataclasses.replace(
            weights_registry.get_entry("resnet18-imagenet"),
            name="test-weights",
            url=server.url,
            file_name="test-weights.pth",
            **{"sha256": None, "sha256_prefix": None, "md5_prefix": None, **hashes},
        )
        monkeypatch.setitem(weights_registry.REGISTRY, entry.name, entry)
        return entry

    return add


@pytest.fixture(scope="module")
def moco_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "moco_coco.pth.tar"
    torch.save(moco_checkpoint(resnet18_state(1), resnet18_state(2), "resnet18"), path)
    return path


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result
    assert "Traceback" not in result.stderr and result.stdout == ""
    return result.stderr


def _download_error(result) -> str:
    """A failed download: one error line (exit 1, a runtime failure); the 'NAME: URL' log line needs --verbose."""
    assert result.exit_code == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and result.stdout == "", result
    return lines[0]


def test_list_json(run_cli, tmp_path):
    result = run_cli("checkpoints", "list", "--dir", tmp_path, "--json")
    assert result.exit_code == 0, result
    document = result.json()
    assert document["directory"] == str(tmp_path)
    rows = {row["name"]: row for row in document["weights"]}
    assert set(rows) == set(weights_registry.REGISTRY)
    assert rows["ours-coco-800ep"]["present"] is False and rows["ours-coco-800ep"]["status"] == "no"
    assert rows["ours-coco-800ep"]["architecture"] == "resnet50" and rows["ours-coco-800ep"]["source"]
    (tmp_path / "ours_coco_800ep.pth.tar").write_bytes(b"x")
    rows = {row["name"]: row for row in run_cli("checkpoints", "list", "--dir", tmp_path, "--json").json()["weights"]}
    assert rows["ours-coco-800ep"]["status"] == "yes"


@pytest.mark.weights
def test_list_table_shows_embedded(run_cli, tmp_path):
    result = run_cli("checkpoints", "list", "--dir", tmp_path)
    assert result.exit_code == 0, result
    line = next(line for line in result.stdout.splitlines() if line.startswith("mobilenet_v2-imagenet"))
    assert "mobilenet_v2" in line and "torchvision" in line and "embedded" in line
    assert f"downloads go to {tmp_path}" in result.stderr


def test_inspect_moco_file(run_cli, moco_file):
    result = run_cli("checkpoints", "inspect", moco_file, "--json")
    assert result.exit_code == 0, result
    report = result.json()
    assert report["format"] == "moco" and report["detected_architecture"] == "resnet18"
    assert report["kept_keys"] == 120 and report["dropped_keys"] == 131
    text = run_cli("checkpoints", "inspect", moco_file, "--architecture", "resnet18")
    assert text.exit_code == 0 and "format" in text.stdout and "moco" in text.stdout


def test_inspect_of_a_file_not_made_by_pretrain_has_no_pretrain_record(run_cli, moco_file):
    r = run_cli("checkpoints", "inspect", moco_file, "--json")
    assert r.exit_code == 0, r
    assert r.json()["pretrain"] is None
    text = run_cli("checkpoints", "inspect", moco_file)
    assert text.exit_code == 0 and "written by dense-retrieval pretrain" not in text.stdout


def test_inspect_wrong_architecture_is_one_line(run_cli, moco_file):
    stderr = _one_line_error(run_cli("checkpoints", "inspect", moco_file, "--architecture", "resnet50"))
    assert "does not fit resnet50: missing keys [" in stderr and "looks like resnet18" in stderr


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "checkpoint file not found"),
        (lambda p: p.write_bytes(b"\x00garbage" * 100), "is not a readable PyTorch checkpoint"),
        (lambda p: torch.save({"epoch": 1}, p), "has no state dict"),
    ],
    ids=["missing", "garbage", "no-weights"],
)
def test_inspect_bad_files(run_cli, tmp_path, make, expected):
    path = tmp_path / "bad.pth"
    make(path)
    assert expected in _one_line_error(run_cli("checkpoints", "inspect", path))


def test_inspect_refuses_malicious_file(run_cli, tmp_path):
    marker = tmp_path / "payload-ran"
    path = malicious_checkpoint(tmp_path / "evil.pth", marker)
    assert "unsafe pickle" in _one_line_error(run_cli("checkpoints", "inspect", path))
    assert not marker.exists()


def test_inspect_unknown_architecture(run_cli, moco_file):
    assert "unknown architecture 'vit'" in _one_line_error(run_cli("checkpoints", "inspect", moco_file, "-a", "vit"))


def test_download_verified_then_not_again(run_cli, tmp_path, server, test_entry):
    test_entry(sha256=SHA256)
    result = run_cli("checkpoints", "download", "test-weights", "--dir", tmp_path, "--json")
    assert result.exit_code == 0, result
    report = result.json()
    assert report["downloaded"] and report["verified"] == "sha256" and report["sha256"] == SHA256
    assert (tmp_path / "test-weights.pth").read_bytes() == PAYLOAD
    again = run_cli("checkpoints", "download", "test-weights", "--dir", tmp_path)
    assert again.exit_code == 0, again
    assert "already present" in again.stdout and "verified (sha256)" in again.stdout
    assert len(server.requests) == 1


def test_download_without_published_hash_says_so(run_cli, tmp_path, test_entry):
    test_entry()
    result = run_cli("checkpoints", "download", "test-weights", "--dir", tmp_path)
    assert result.exit_code == 0, result
    assert "no published hash for test-weights" in result.stderr and SHA256 in result.stderr
    assert (tmp_path / "test-weights.pth.sha256").read_text().split()[0] == SHA256


def test_download_hash_mismatch_leaves_nothing(run_cli, tmp_path, server):
    result = run_cli("checkpoints", "download", "resnet18-imagenet", "--dir", tmp_path, "--url", server.url)
    stderr = _download_error(result)
    assert "is not the expected one (sha256 mismatch" in stderr
    assert list(tmp_path.iterdir()) == []


def test_download_unknown_name(run_cli, tmp_path):
    stderr = _one_line_error(run_cli("checkpoints", "download", "ours", "--dir", tmp_path))
    assert "unknown weights name 'ours'" in stderr and "ours-coco-800ep" in stderr


@pytest.mark.weights
def test_download_embedded_needs_nothing(run_cli, tmp_path):
    result = run_cli("checkpoints", "download", "mobilenet_v2-imagenet", "--dir", tmp_path, "--json")
    assert result.exit_code == 0, result
    report = result.json()
    assert report["embedded"] and not report["downloaded"] and report["verified"] == "sha256"
    assert list(tmp_path.iterdir()) == []


def test_help_texts_teach(run_cli):
    for command, phrase in (
        ("list", "download NAME"),
        ("inspect", "run code is refused"),
        ("download", "resumes"),
    ):
        result = run_cli("checkpoints", command, "--help")
        assert result.exit_code == 0 and phrase in " ".join(result.stdout.split()), (command, result.stdout)


def test_inspect_registry_name_not_downloaded(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv(weights_registry.ENV_CHECKPOINTS, str(tmp_path))
    stderr = _one_line_error(run_cli("checkpoints", "inspect", "ours-coco-800ep"))
    assert "not downloaded" in stderr and "run `dense-retrieval checkpoints download ours-coco-800ep`" in stderr
