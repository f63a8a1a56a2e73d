"""Opt-in reuse of a read checkpoint (`bench run` builds one backbone under several protocols): the file is read
once while unchanged, read again when it changes, and nothing is kept outside the block."""

from __future__ import annotations

import os

import torch
import torchvision

from dense_retrieval.backbone.weights import checkpoints
from dense_retrieval.backbone.weights.reuse import reuse_loaded_checkpoints


def test_a_file_is_read_once_within_the_block_and_again_when_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    reads = []
    original = checkpoints._torch_load
    monkeypatch.setattr(checkpoints, "_torch_load", lambda p: reads.append(p) or original(p))
    with reuse_loaded_checkpoints(1):
        first = checkpoints.load_checkpoint(path, "resnet18")
        assert checkpoints.load_checkpoint(path, "resnet18") is first and len(reads) == 1
        state = torchvision.models.resnet18(weights=None).state_dict()
        torch.save(state, path)
        os.utime(path, ns=(1, 1))  # another file at the same path: new size or time
        changed = checkpoints.load_checkpoint(path, "resnet18")
        assert changed is not first and len(reads) == 2
        torch.testing.assert_close(changed.state_dict["conv1.weight"], state["conv1.weight"])
    checkpoints.load_checkpoint(path, "resnet18")
    checkpoints.load_checkpoint(path, "resnet18")
    assert len(reads) == 4  # outside the block every call reads the file
