"""Checkpoint loading: every supported layout, strict key checks, unsafe and malformed files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torchvision

from dense_retrieval.backbone.weights.checkpoints import (
    apply_state_dict,
    detect_architecture,
    inspect_checkpoint,
    load_checkpoint,
)
from dense_retrieval.errors import CheckpointError, InputError
from tests.checkpoint_files import (
    backbone_only,
    dino_checkpoint,
    malicious_checkpoint,
    moco_checkpoint,
    resnet18_state,
)


@pytest.fixture(scope="module")
def query() -> dict[str, torch.Tensor]:
    return resnet18_state(seed=1)


@pytest.fixture(scope="module")
def other() -> dict[str, torch.Tensor]:
    return resnet18_state(seed=2)


def _assert_backbone_equal(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    for key, value in backbone_only(expected).items():
        assert torch.equal(state[key], value), key


def _fresh_resnet18() -> torch.nn.Module:
    torch.manual_seed(99)
    return torchvision.models.resnet18(weights=None)


def test_plain_torchvision_state_dict(tmp_path, query):
    path = tmp_path / "resnet18.pth"
    torch.save(query, path)
    checkpoint = load_checkpoint(path, "resnet18")
    assert checkpoint.checkpoint_format == "torchvision"
    assert checkpoint.dropped_keys == ()
    model = _fresh_resnet18()
    apply_state_dict(model, checkpoint, "resnet18")
    for key, value in query.items():
        assert torch.equal(model.state_dict()[key], value), key  # the classifier too


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_moco_checkpoint_keeps_query_encoder(tmp_path, query, other, legacy):
    """The paper's layout (MoCo v2 ImageNet files of 2020 use the legacy, non-zip serialisation)."""
    path = tmp_path / "ours_coco_800ep.pth.tar"
    torch.save(moco_checkpoint(query, other, "resnet18"), path, _use_new_zipfile_serialization=not legacy)
    checkpoint = load_checkpoint(path, "resnet18")
    assert checkpoint.checkpoint_format == "moco"
    assert set(checkpoint.state_dict) == set(backbone_only(query))
    dropped = set(checkpoint.dropped_keys)
    assert {"module.queue", "module.queue_ptr", "module.queue_backbone"} <= dropped
    assert {f"module.encoder_q.fc.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")} <= dropped
    assert sum(key.startswith("module.encoder_k.") for key in dropped) == len(backbone_only(other)) + 4
    model = _fresh_resnet18()
    head_before = model.fc.weight.clone()
    apply_state_dict(model, checkpoint, "resnet18")
    _assert_backbone_equal(model, query)  # encoder_q, not encoder_k
    assert not torch.equal(model.conv1.weight, other["conv1.weight"])
    assert torch.equal(model.fc.weight, head_before)  # the dropped head keeps the model's own init


@pytest.mark.parametrize(
    ("wrapper", "prefix", "expected_format"),
    [
        ("model", "", "wrapped-model"),
        ("model", "module.", "wrapped-model"),
        ("state_dict", "", "wrapped-state_dict"),
        ("state_dict", "module.", "wrapped-state_dict"),
    ],
)
def test_wrapped_state_dicts(tmp_path, query, wrapper, prefix, expected_format):
    path = tmp_path / "wrapped.pth"
    torch.save({wrapper: {prefix + k: v for k, v in query.items()}, "epoch": 3, "best_acc": 0.5}, path)
    checkpoint = load_checkpoint(path, "resnet18")
    assert checkpoint.checkpoint_format == expected_format
    assert set(checkpoint.state_dict) == set(query)
    model = _fresh_resnet18()
    apply_state_dict(model, checkpoint, "resnet18")
    _assert_backbone_equal(model, query)
    assert torch.equal(model.fc.weight, query["fc.weight"])


@pytest.mark.parametrize("ddp", [True, False], ids=["module.backbone", "backbone"])
def test_dino_checkpoint_uses_teacher_backbone(tmp_path, query, other, ddp):
    path = tmp_path / "dino_resnet18_full.pth"
    torch.save(dino_checkpoint(teacher=query, student=other, ddp=ddp), path)
    checkpoint = load_checkpoint(path, "resnet18")
    assert checkpoint.checkpoint_format == "dino"
    assert set(checkpoint.state_dict) == set(backbone_only(query))
    assert any(".head." in f".{key}" for key in checkpoint.dropped_keys)
    model = _fresh_resnet18()
    apply_state_dict(model, checkpoint, "resnet18")
    _assert_backbone_equal(model, query)


def test_plain_backbone_without_classifier(tmp_path, query):
    """DINO publishes its ResNet-50 as a bare backbone state dict (fc replaced by Identity)."""
    path = tmp_path / "dino_resnet18_pretrain.pth"
    torch.save(backbone_only(query), path)
    checkpoint = load_checkpoint(path, "resnet18")
    assert checkpoint.checkpoint_format == "backbone"
    model = _fresh_resnet18()
    apply_state_dict(model, checkpoint, "resnet18")
    _assert_backbone_equal(model, query)


def test_wrong_architecture_names_missing_and_unexpected_keys(tmp_path, query):
    path = tmp_path / "resnet18.pth"
    torch.save(query, path)
    checkpoint = load_checkpoint(path, "resnet50")
    model = torchvision.models.resnet50(weights=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as caught:
        apply_state_dict(model, checkpoint, "resnet50")
    message = str(caught.value)
    assert "does not fit resnet50" in message and str(path) in message
    assert "missing keys [" in message and "layer1.0.conv3.weight" in message
    assert "shape mismatches [" in message and "layer1.0.conv1.weight (64, 64, 3, 3) vs (64, 64, 1, 1)" in message
    assert "more]" in message and "looks like resnet18" in message
    assert "\n" not in message
    for key, value in model.state_dict().items():  # nothing was half-loaded
        assert torch.equal(value, before[key]), key


def test_strict_keys_one_missing_one_unexpected(tmp_path, query):
    state = dict(query)
    del state["layer4.1.bn2.weight"]
    state["layer5.0.conv1.weight"] = torch.zeros(3)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as caught:
        apply_state_dict(_fresh_resnet18(), load_checkpoint(path), "resnet18")
    message = str(caught.value)
    assert "missing keys [layer4.1.bn2.weight]" in message
    assert "unexpected keys [layer5.0.conv1.weight]" in message


def test_half_a_classifier_is_an_error(tmp_path, query):
    state = dict(query)
    del state["fc.bias"]
    path = tmp_path / "half_head.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"missing keys \[fc.bias\]"):
        apply_state_dict(_fresh_resnet18(), load_checkpoint(path), "resnet18")


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    path = malicious_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(CheckpointError, match=r"refusing to load .*unsafe pickle .*(posix|os).system"):
        load_checkpoint(path, "resnet18")
    assert not marker.exists()
    # Control: the payload is real - an unsafe load would have run it.
    control = malicious_checkpoint(tmp_path / "control.pth", tmp_path / "control-ran")
    torch.load(control, weights_only=False)
    assert (tmp_path / "control-ran").exists()


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(torchvision.models.resnet18(weights=None), path)
    with pytest.raises(CheckpointError, match="unsafe pickle .*torchvision.models.resnet.ResNet"):
        load_checkpoint(path)


def test_argparse_namespace_next_to_weights_is_allowed(tmp_path, query):
    path = tmp_path / "with_args.pth"
    torch.save({"state_dict": dict(query), "args": __import__("argparse").Namespace(lr=0.1)}, path)
    assert load_checkpoint(path).checkpoint_format == "wrapped-state_dict"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a readable PyTorch checkpoint"),
        (b"<html>this is not a checkpoint</html>" * 20, "not a readable PyTorch checkpoint"),
        (pickle.dumps({"conv1.weight": [1, 2, 3]}), "not a readable PyTorch checkpoint"),
    ],
    ids=["empty", "garbage", "plain-pickle"],
)
def test_malformed_files(tmp_path, content, expected):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as caught:
        load_checkpoint(path, "resnet18")
    assert str(path) in str(caught.value)


def test_truncated_file(tmp_path, query):
    path = tmp_path / "resnet18.pth"
    torch.save(query, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint.*zip archive"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"epoch": 3, "arch": "resnet18"}, "has no state dict: top-level keys \\[epoch, arch\\]"),
        ({"state_dict": {"note": "empty"}}, "contains no tensors"),
        (torch.zeros(3), "holds a Tensor"),
        ([torch.zeros(3), torch.ones(2)], "holds a list"),
    ],
    ids=["no-state-dict", "no-tensors", "bare-tensor", "list"],
)
def test_payload_without_weights(tmp_path, payload, expected):
    path = tmp_path / "odd.pth"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path)


def test_missing_file_and_unknown_architecture(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(InputError, match="unknown architecture 'resnet101'"):
        load_checkpoint(tmp_path / "nope.pth", "resnet101")


def test_detect_architecture(query):
    assert detect_architecture(query) == "resnet18"
    assert detect_architecture(backbone_only(query)) == "resnet18"
    with torch.device("meta"):
        r50 = torchvision.models.resnet50(weights=None).state_dict()
        mobilenet = torchvision.models.mobilenet_v2(weights=None).state_dict()
        r34 = torchvision.models.resnet34(weights=None).state_dict()
    assert detect_architecture(r50) == "resnet50"
    assert detect_architecture(backbone_only(mobilenet, "classifier.")) == "mobilenet_v2"
    assert detect_architecture(r34) is None
    assert detect_architecture({}) is None


def test_inspect_moco_file(tmp_path, query, other):
    path = tmp_path / "moco.pth.tar"
    torch.save(moco_checkpoint(query, other, "resnet18"), path)
    report = inspect_checkpoint(path)
    assert report["format"] == "moco" and report["detected_architecture"] == "resnet18"
    assert report["kept_keys"] == len(query) - 2 and not report["has_classifier"]
    assert report["dropped_keys"] == len(query) - 2 + 4 + 4 + 3
    assert report["parameters"] == sum(p.numel() for n, p in _fresh_resnet18().named_parameters() if "fc" not in n)
    assert len(report["sha256"]) == 64 and report["size_bytes"] == path.stat().st_size
    assert report["registry_match"] is None
    with pytest.raises(CheckpointError, match="does not fit mobilenet_v2.*looks like resnet18"):
        inspect_checkpoint(path, "mobilenet_v2")


@pytest.mark.weights
def test_embedded_mobilenet_loads_strictly_and_classifies():
    """The embedded ImageNet MobileNetV2 fits torchvision's mobilenet_v2 exactly and knows a cat."""
    from skimage import data

    from dense_retrieval.backbone.weights.registry import resolve_weights_path

    path = resolve_weights_path("mobilenet_v2-imagenet")
    checkpoint = load_checkpoint(path, "mobilenet_v2")
    assert checkpoint.checkpoint_format == "torchvision" and checkpoint.dropped_keys == ()
    assert checkpoint.sha256 == "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
    model = torchvision.models.mobilenet_v2(weights=None)
    apply_state_dict(model, checkpoint, "mobilenet_v2")
    assert model.load_state_dict(checkpoint.state_dict, strict=True)  # nothing missing at all
    assert inspect_checkpoint(path)["registry_match"] == "mobilenet_v2-imagenet"
    image = torch.from_numpy(np.ascontiguousarray(data.chelsea())).permute(2, 0, 1).float() / 255
    image = torch.nn.functional.interpolate(image[None], size=(224, 224), mode="bilinear", antialias=True)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        top = model.eval()((image - mean[:, None, None]) / std[:, None, None]).argmax().item()
    assert 281 <= top <= 285  # ImageNet's domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian)
