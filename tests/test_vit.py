"""Vision transformers: public checkpoint layouts loaded strictly, the patch-token contract, the resize rule.

The checkpoints are written here in the exact key layouts of the public files (tests/vit_checkpoints.py)
from a randomly initialised timm model; loading one must give that model's features back.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from dense_retrieval.backbone.config import FeatureConfig
from dense_retrieval.backbone.networks import build_backbone
from dense_retrieval.backbone.specs import ARCHITECTURE_NAMES, ARCHITECTURES
from dense_retrieval.backbone.weights.checkpoints import inspect_checkpoint, load_checkpoint
from dense_retrieval.errors import CheckpointError, InputError
from dense_retrieval.protocols import CRW, DINO, MASKCONTRAST, default_propagation_protocol
from tests import vit_checkpoints as layouts

VITS = [name for name in ARCHITECTURE_NAMES if ARCHITECTURES[name].is_vit]


@pytest.fixture(scope="module")
def sources():
    """Randomly initialised ViT-S models (seed 3), built once: name -> DenseBackbone."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = build_backbone(name=name, weights="random:3")
        return cache[name]

    return get


def _features(backbone, size=(28, 42)) -> torch.Tensor:
    patch = backbone.input_multiple
    height, width = (side // patch * patch or patch for side in size)
    torch.manual_seed(0)
    with torch.inference_mode():
        return backbone(torch.randn(1, 3, height * 2, width * 2))


def _state(backbone) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in backbone.body.model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, layout, file_format",
    [
        ("vit_small_patch16", "dino_backbone", "backbone"),
        ("vit_small_patch14_dinov2", "dinov2_hub", "dinov2"),
        ("vit_small_patch14_reg4_dinov2", "dinov2_hub", "dinov2"),
        ("vit_small_patch16", "timm_classifier", "timm"),
        ("vit_small_patch14_reg4_dinov2", "timm_own", "timm"),
    ],
)
def test_public_layouts_load_strictly_and_give_the_same_features(sources, tmp_path, name, layout, file_format):
    source = sources(name)
    state = _state(source)
    payload = state if layout == "timm_own" else getattr(layouts, layout)(state)
    path = tmp_path / "weights.pth"
    torch.save(payload, path)
    report = inspect_checkpoint(path)
    spec = ARCHITECTURES[name].transformer
    assert (report["format"], report["architecture"]) == (file_format, name)
    assert report["patch_size"] == spec.patch_size and report["register_tokens"] == spec.register_tokens
    loaded = build_backbone(name=name, weights=str(path))
    assert loaded.weights_id == "file:weights.pth" and loaded.weights_sha256 == report["sha256"]
    assert torch.allclose(_features(loaded), _features(source), atol=1e-5)


@pytest.mark.slow
def test_dinov2_registers_are_mapped_onto_timm_names(sources, tmp_path):
    state = _state(sources("vit_small_patch14_reg4_dinov2"))
    hub = layouts.dinov2_hub(state)
    assert hub["pos_embed"].shape == (1, 1 + 37 * 37, 384) and hub["register_tokens"].shape == (1, 4, 384)
    assert hub["mask_token"].shape == (1, 384) and "blocks.0.ls1.gamma" in hub
    torch.save(hub, tmp_path / "dinov2_vits14_reg4_pretrain.pth")
    checkpoint = load_checkpoint(tmp_path / "dinov2_vits14_reg4_pretrain.pth")
    assert checkpoint.dropped_keys == ("mask_token",)
    assert checkpoint.state_dict["pos_embed"].shape == (1, 37 * 37, 384)
    assert torch.allclose(checkpoint.state_dict["cls_token"], state["cls_token"], atol=1e-6)
    assert torch.equal(checkpoint.state_dict["reg_token"], state["reg_token"])


@pytest.mark.slow
def test_dino_full_checkpoint_takes_the_teacher(sources, tmp_path):
    teacher = _state(sources("vit_small_patch16"))
    student = {key: torch.zeros_like(value) for key, value in teacher.items()}
    path = tmp_path / "dino_deitsmall16_pretrain_full_checkpoint.pth"
    torch.save(layouts.dino_full(teacher, student), path)
    report = inspect_checkpoint(path)
    assert (report["format"], report["architecture"], report["patch_size"]) == ("dino", "vit_small_patch16", 16)
    checkpoint = load_checkpoint(path)
    assert set(checkpoint.state_dict) == set(teacher)
    assert all(torch.equal(checkpoint.state_dict[key], teacher[key]) for key in teacher)
    assert {"head.mlp.0.weight", "head.last_layer.weight_g", "head.last_layer.weight_v"} <= set(checkpoint.dropped_keys)
    assert not any(key.startswith("module.") for key in checkpoint.state_dict)
    loaded = build_backbone(name="vit_small_patch16", weights=str(path))
    assert torch.allclose(_features(loaded), _features(sources("vit_small_patch16")), atol=1e-5)


@pytest.mark.slow
def test_mocov3_file_means_the_12_head_vit_small(sources, tmp_path):
    """MoCo v3's ViT-S has 12 heads; its tensors have the 6-head ViT-S's shapes, so the layout decides."""
    source = sources("vit_small_patch16_mocov3")
    state = _state(source)
    path = tmp_path / "vit-s-300ep.pth.tar"
    torch.save(layouts.mocov3(state, {k: torch.zeros_like(v) for k, v in state.items()}), path)
    report = inspect_checkpoint(path)
    assert (report["format"], report["architecture"]) == ("mocov3", "vit_small_patch16_mocov3")
    assert report["kept_keys"] == len(state) and report["dropped_keys"] > len(state)
    loaded = build_backbone(name="vit_small_patch16_mocov3", weights=str(path))
    assert loaded.body.model.blocks[0].attn.num_heads == 12
    assert torch.allclose(_features(loaded), _features(source), atol=1e-5)
    six_heads = build_backbone(name="vit_small_patch16", weights=str(path))  # loads: same shapes
    assert not torch.allclose(_features(six_heads), _features(source), atol=1e-3)


def test_timm_safetensors_file(sources, tmp_path):
    state = _state(sources("vit_small_patch16"))
    save_file(layouts.timm_classifier(state), tmp_path / "model.safetensors")
    report = inspect_checkpoint(tmp_path / "model.safetensors")
    assert (report["format"], report["architecture"], report["dropped_keys"]) == ("timm", "vit_small_patch16", 2)


def test_wrong_patch_size_fails_strictly_naming_the_keys(sources, tmp_path):
    path = tmp_path / "dino_deitsmall8_pretrain.pth"
    torch.save(layouts.dino_backbone(_state(sources("vit_small_patch8"))), path)
    with pytest.raises(CheckpointError) as error:
        build_backbone(name="vit_small_patch16", weights=str(path))
    message = str(error.value)
    assert "pos_embed (1, 785, 384) vs (1, 197, 384)" in message
    assert "patch_embed.proj.weight (384, 3, 8, 8) vs (384, 3, 16, 16)" in message
    assert "looks like vit_small_patch8" in message


def test_missing_and_unexpected_keys_are_named(sources, tmp_path):
    state = _state(sources("vit_small_patch16"))
    del state["blocks.11.mlp.fc2.bias"]
    state["blocks.12.norm1.weight"] = torch.ones(384)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \[blocks\.11\.mlp\.fc2\.bias\]") as error:
        build_backbone(name="vit_small_patch16", weights=str(tmp_path / "broken.pth"))
    assert "unexpected keys [blocks.12.norm1.weight]" in str(error.value)


def test_layer_contract_last_block_after_the_final_norm(sources):
    """blocks.N after the final norm, prefix tokens dropped: what timm's forward_intermediates gives."""
    source = sources("vit_small_patch14_reg4_dinov2")  # "size" position interpolation = timm's own
    model = source.body.model
    x = torch.randn(1, 3, 42, 70)
    with torch.inference_mode():
        expected = model.forward_intermediates(x, indices=[11], norm=True, intermediates_only=True)[0]
        tokens = source.tokens(x)
    assert torch.allclose(tokens.patches, expected, atol=1e-5)
    assert tokens.patches.shape == (1, 384, 3, 5) and tokens.cls.shape == (1, 384)
    assert tokens.registers.shape == (1, 4, 384)
    assert all(block.attn.fused_attn for block in model.blocks)  # torch's scaled_dot_product_attention, CPU too


def test_earlier_block_drops_the_blocks_after_it(sources):
    full = sources("vit_small_patch16")
    cut = build_backbone(name="vit_small_patch16", layer="blocks.3", weights="random:3")
    assert len(cut.body.model.blocks) == 4 and cut.describe()["layer"] == "blocks.3"
    x = torch.randn(1, 3, 224, 224)  # the position table's own grid: no interpolation
    with torch.inference_mode():
        expected = full.body.model.forward_intermediates(x, indices=[3], norm=True, intermediates_only=True)[0]
        assert torch.allclose(cut(x), expected, atol=1e-5)
    assert build_backbone(name="vit_small_patch16", layer="last", weights="random").config.layer == "blocks.11"


def test_dino_position_interpolation_differs_from_timms_off_its_grid(sources):
    """DINO resamples its 14x14 table with a scale factor and no antialias; timm by size with antialias."""
    dino = sources("vit_small_patch16")
    x = torch.randn(1, 3, 96, 160)
    with torch.inference_mode():
        timm_way = dino.body.model.forward_intermediates(x, indices=[11], norm=True, intermediates_only=True)[0]
        ours = dino(x)
    assert ours.shape == timm_way.shape == (1, 384, 6, 10)
    assert not torch.allclose(ours, timm_way, atol=1e-4)


def test_vit_refuses_other_output_strides_and_inputs_off_the_patch_grid(sources):
    with pytest.raises(InputError, match="stride 16 .* output stride 8 is not available"):
        build_backbone(name="vit_small_patch16", output_stride=8, weights="random")
    assert build_backbone(name="vit_small_patch16", output_stride=16, weights="random").stride == 16
    with pytest.raises(InputError, match="multiple of 16"):
        sources("vit_small_patch16")(torch.zeros(1, 3, 40, 48))
    with pytest.raises(InputError, match="has no class token"):
        build_backbone(name="resnet18", layer="layer1", weights="random").tokens(torch.zeros(1, 3, 32, 32))


FRAME_SIZES = [(480, 854), (480, 910), (481, 853), (67, 101), (854, 480)]


@pytest.mark.parametrize("name", VITS)
def test_every_vit_gives_a_map_of_input_over_patch_after_the_resize_rule(name):
    """For every ViT of the table and several frame sizes (shapes on the meta device: no compute)."""
    spec = ARCHITECTURES[name]
    patch = spec.transformer.patch_size
    with torch.device("meta"):
        backbone = build_backbone(name=name, weights="random")
    for protocol in (DINO, CRW, MASKCONTRAST):
        config = protocol.features_for(name).features()
        for frame in FRAME_SIZES:
            height, width = config.input_size(*frame, backbone.input_multiple)
            assert height % patch == 0 and width % patch == 0 and height <= max(frame[0], 512)
            if protocol is DINO and patch != 14:  # DINO's rule: short side 480, long side floored to 64
                assert (height, width) == {(480, 854): (480, 832), (480, 910): (480, 896),
                                           (854, 480): (832, 480)}.get(frame, (height, width))  # fmt: skip
            if protocol is not CRW or frame not in ((480, 854), (481, 853)):
                continue
            with torch.inference_mode():  # the network's own arithmetic, on the meta device
                out = backbone(torch.empty(1, 3, height, width, device="meta"))
            assert tuple(out.shape) == (1, spec.transformer.embed_dim, height // patch, width // patch)
    if patch == 14:
        assert DINO.features_for(name).features().input_size(480, 854, 14) == (476, 854)


def test_resize_rules():
    assert FeatureConfig(resize="short:480/64").input_size(480, 854) == (480, 832)
    assert FeatureConfig(resize="short:480/64").input_size(1080, 1920) == (480, 832)
    assert FeatureConfig(resize="short:480/64").input_size(480, 1152) == (480, 1152)
    assert FeatureConfig(resize="native").input_size(67, 101, 16) == (64, 96)
    assert FeatureConfig(resize="native").input_size(10, 101, 16) == (16, 96)
    assert FeatureConfig(resize="fixed:512x512").input_size(300, 500, 14) == (504, 504)
    assert FeatureConfig(resize="native").input_size(67, 101) == (67, 101)  # CNNs: unchanged
    with pytest.raises(InputError, match="short:480/64"):
        FeatureConfig(resize="short:480/")


def test_protocols_for_vits():
    assert default_propagation_protocol("vit_small_patch8") is DINO
    assert default_propagation_protocol("resnet50") is CRW
    dino = DINO.features_for("vit_small_patch16")
    assert (dino.resize, dino.output_stride, dino.l2_normalize, dino.preprocess) == (
        "short:480/64",
        None,
        True,
        "dino",
    )
    assert DINO.features_for("vit_base_patch14_dinov2").resize == "short:480/14"
    assert CRW.features_for("vit_small_patch16").output_stride is None
    # CNNs under dino: CRW's features, read and normalised as DINO's read_frame does
    assert DINO.features_for("resnet50") == replace(CRW.features, preprocess="dino")
    assert CRW.features_for("resnet50") == CRW.features


@pytest.mark.slow
def test_vit_small_at_480p_through_the_feature_extractor(sources):
    """A real forward pass at DAVIS size under DINO's protocol: 480x854 frames -> 30x52 L2-normalised tokens."""
    import numpy as np

    from dense_retrieval.backbone.features import FeatureExtractor

    extractor = FeatureExtractor(sources("vit_small_patch16"), DINO.features_for("vit_small_patch16").features())
    frame = np.random.default_rng(0).integers(0, 256, (480, 854, 3), dtype=np.uint8)
    maps = extractor.extract([frame])
    assert maps.input_size == (480, 832) and maps.stride == 16
    assert tuple(maps.features.shape) == (1, 384, 30, 52) == (1, 384, *extractor.grid_size(480, 854))
    assert torch.allclose(maps.features.norm(dim=1), torch.ones(1, 30, 52), atol=1e-4)
