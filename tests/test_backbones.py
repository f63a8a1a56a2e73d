import math

import pytest
import torch
import torchvision

from dense_retrieval.backbone.config import BackboneConfig
from dense_retrieval.backbone.networks import build_backbone
from dense_retrieval.backbone.specs import ARCHITECTURE_NAMES, ARCHITECTURES
from dense_retrieval.errors import InputError

H, W = 67, 101  # odd sizes exercise the ceil arithmetic
CNNS = [name for name in ARCHITECTURE_NAMES if not ARCHITECTURES[name].is_vit]  # ViTs: tests/test_vit.py


@pytest.mark.parametrize("name", CNNS)
@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("mode", ["remove", "dilate"])
def test_feature_map_size_is_ceil_of_input_over_stride(name, output_stride, mode):
    deepest = ARCHITECTURES[name].layers[-1].name
    backbone = build_backbone(name=name, layer=deepest, output_stride=output_stride, stride_mode=mode, weights="random")
    assert backbone.stride == output_stride
    with torch.inference_mode():
        out = backbone(torch.zeros(1, 3, H, W))
    assert tuple(out.shape) == (1, backbone.channels, math.ceil(H / output_stride), math.ceil(W / output_stride))


@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_every_layer_reports_its_channels_and_natural_stride(name):
    spec = ARCHITECTURES[name]
    # ViTs: shapes on the meta device (no init cost), first and last block (the others are the same module)
    device = torch.device("meta") if spec.is_vit else torch.device("cpu")
    layers = (spec.layers[0], spec.layers[-1]) if spec.is_vit else spec.layers
    height, width = 64 // spec.input_multiple * spec.input_multiple, 96 // spec.input_multiple * spec.input_multiple
    for info in layers:
        with device:
            backbone = build_backbone(name=name, layer=info.name, weights="random")
        with torch.inference_mode():
            out = backbone(torch.zeros(1, 3, height, width, device=device))
        assert out.shape[1] == info.channels == backbone.channels
        assert out.shape[2:] == (math.ceil(height / info.stride), math.ceil(width / info.stride))


def test_crw_default_resnet50_layer3_at_stride_8_by_stride_removal():
    backbone = build_backbone(name="resnet50", layer="res4", output_stride=8, weights="random")
    assert backbone.config.layer == "layer3" and backbone.channels == 1024 and backbone.stride == 8
    convs = [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.dilation == (1, 1) for c in convs), "stride removal must not dilate"
    layer3_convs = [
        c for n, c in backbone.body.named_modules() if n.startswith("layer3") and isinstance(c, torch.nn.Conv2d)
    ]
    assert layer3_convs and all(c.stride == (1, 1) for c in layer3_convs)


def test_layers_after_the_chosen_one_are_not_built():
    backbone = build_backbone(name="resnet50", layer="layer2", weights="random")
    names = [name for name, _ in backbone.body.named_children()]
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2"]
    mobile = build_backbone(name="mobilenet_v2", layer="features.6", weights="random")
    assert len(list(mobile.body.children())) == 7


def test_dilation_matches_torchvision_replace_stride_with_dilation():
    torch.manual_seed(0)
    ours = build_backbone(name="resnet50", layer="layer4", output_stride=8, stride_mode="dilate", weights="random")
    reference = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True]).eval()
    reference.load_state_dict(ours.body.state_dict(), strict=False)
    trunk = torch.nn.Sequential(
        *[getattr(reference, n) for n in ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]]
    )
    x = torch.randn(1, 3, 64, 80)
    with torch.inference_mode():
        assert torch.allclose(ours(x), trunk(x), rtol=1e-4, atol=1e-4)  # summation order differs by thread count


def test_backbone_is_frozen_and_stays_in_eval_mode():
    backbone = build_backbone(name="resnet18", weights="random")
    backbone.train()
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())


def test_describe_records_what_made_the_features():
    info = build_backbone(BackboneConfig(name="resnet18", layer="layer3", output_stride=8), weights="random").describe()
    assert info["name"] == "resnet18" and info["layer"] == "layer3" and info["stride"] == 8
    assert info["weights"] == "random:0" and info["channels"] == 256


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"name": "vgg16"}, "unknown backbone 'vgg16'"),
        ({"name": "resnet50", "layer": "layer9"}, "no layer 'layer9'"),
        ({"output_stride": 4}, "output stride 4"),
        ({"stride_mode": "atrous"}, "stride mode 'atrous'"),
        ({"weights": "/no/such/file.pth"}, "neither a registry name nor a file"),
    ],
)
def test_bad_configuration_is_an_input_error(overrides, fragment):
    with pytest.raises(InputError, match=fragment.replace("(", r"\(")):
        build_backbone(**({"weights": "random"} | overrides))


def test_random_initialisation_is_reproducible_and_seedable():
    state = torch.random.get_rng_state()
    first = build_backbone(name="resnet18", layer="layer1", weights="random").body.conv1.weight
    again = build_backbone(name="resnet18", layer="layer1", weights="random:0").body.conv1.weight
    other = build_backbone(name="resnet18", layer="layer1", weights="random:1").body.conv1.weight
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(torch.random.get_rng_state(), state), "building a backbone must not touch the global RNG"
    with pytest.raises(InputError, match="seed must be an integer"):
        build_backbone(name="resnet18", weights="random:x")
